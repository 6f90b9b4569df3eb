"""lab.runtime: how sessions are made and run on the CPU provider."""

import logging

import numpy as np
import onnxruntime as ort
import pytest

from lab import runtime
from service.repository import Repository


class Recording:
    """A session that records the rows of every run() it forwards."""

    def __init__(self, session) -> None:
        self.session, self.rows = session, []

    def get_providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, names, feeds):
        self.rows.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)


def test_cpu_runs_are_split_at_cpu_batch_with_the_same_results(model_repo, monkeypatch):
    session = runtime.create_session(model_repo / "ring8-gan" / "1" / "model.onnx", "cpu")
    name = session.get_inputs()[0].name
    z = np.random.default_rng(0).standard_normal((2500, session.get_inputs()[0].shape[1]))
    z = z.astype(np.float32)
    whole = session.run(None, {name: z})[0]

    monkeypatch.setattr(runtime, "CPU_BATCH", 1024)
    recording = Recording(session)
    split = runtime.run_rows(recording, {name: z}, max_batch=8192)
    assert recording.rows == [1024, 1024, 452]
    np.testing.assert_array_equal(split, whole)

    recording = Recording(session)
    runtime.run_rows(recording, {name: z}, max_batch=1000)  # MAX_BATCH below CPU_BATCH
    assert recording.rows == [1000, 1000, 500]


def test_fused_graphs_skip_the_memory_reuse_planner(model_repo):
    entry = Repository(model_repo, "cpu").load().get("grid25-edm")
    assert entry.ready and entry.versions[1].fused is not None
    assert entry.versions[1].fused.get_session_options().enable_mem_reuse is False
    assert entry.versions[1].session.get_session_options().enable_mem_reuse is True


@pytest.mark.parametrize("raw", ["0", "-5", "many", "1.5"])
def test_a_bad_cpu_batch_setting_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("ORT_CPU_BATCH", raw)
    with pytest.raises(ValueError, match="ORT_CPU_BATCH must be a positive integer"):
        runtime.positive_setting("ORT_CPU_BATCH", 1024)


def test_cpu_batch_setting_default_and_value(monkeypatch):
    monkeypatch.delenv("ORT_CPU_BATCH", raising=False)
    assert runtime.positive_setting("ORT_CPU_BATCH", 1024) == 1024
    monkeypatch.setenv("ORT_CPU_BATCH", "256")
    assert runtime.positive_setting("ORT_CPU_BATCH", 1024) == 256


class FallenBack(ort.InferenceSession):
    """A session whose CUDA provider failed to load, as on a machine without CUDA libraries."""

    def __init__(self, path: str, sess_options=None, providers=None) -> None:
        super().__init__(path, sess_options=sess_options, providers=[runtime.CPU])


def test_the_cpu_fallback_is_warned_once_per_process(model_repo, monkeypatch, caplog):
    """Many sessions falling back to the CPU give one warning, which names DEVICE=cpu."""
    monkeypatch.setattr(runtime, "requested_providers", lambda device: [runtime.CUDA, runtime.CPU])
    monkeypatch.setattr(runtime.ort, "InferenceSession", FallenBack)
    runtime.warn_cpu_fallback.cache_clear()
    caplog.set_level(logging.DEBUG, logger="lab.runtime")
    for _ in range(5):
        session = runtime.create_session(model_repo / "ring8-gan" / "1" / "model.onnx", "auto")
        assert runtime.session_provider(session) == runtime.CPU
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "DEVICE=cpu" in warnings[0].getMessage()
