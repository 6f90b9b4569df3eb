"""The bundled models on the CUDA execution provider (run with -m gpu on the GPU machine)."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from lab import runtime
from lab.noise import gaussian_latents
from lab.samplers import Churn
from lab.sampling import (
    ScoreSpec,
    fused_score_samples,
    onnx_denoiser,
    score_samples,
    stepped_score_samples,
)
from service.config import REPO_MODELS
from service.repository import Repository
from tests.service.test_batching import assert_merged_runs_give_each_request_its_bits, served_graphs


def cuda_works() -> bool:
    """True when a CUDA session really loads (onnxruntime-gpu lists the CUDA provider as
    available even where its libraries are missing)."""
    if runtime.CUDA not in ort.get_available_providers():
        return False
    try:
        runtime.create_session(REPO_MODELS / "ring8-gan" / "1" / "model.onnx", "cuda")
    except runtime.RuntimeUnavailable:
        return False
    return True


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_works(), reason="the CUDA execution provider does not load"),
]


def card(name: str) -> dict:
    return json.loads((REPO_MODELS / name / "card.json").read_text())


@pytest.fixture(scope="module")
def repository() -> Repository:
    return Repository(REPO_MODELS, "cuda").load()


def test_every_bundled_model_is_served_by_cuda(repository):
    assert repository.not_ready() == {}
    servable = repository.of_kind("gan", "score")
    assert servable and all(entry.provider == runtime.CUDA for entry in servable)
    for entry in repository.of_kind("score"):
        for version in entry.versions.values():
            assert runtime.session_provider(version.fused) == runtime.CUDA
            assert all(
                runtime.session_provider(s) == runtime.CUDA for s in version.steppers.values()
            )


@pytest.mark.parametrize("name", ["ring8-wgan-gp", "stacked-digits-gan"])
def test_cuda_generators_agree_with_the_cpu(name):
    latent_dim = card(name)["latent_dim"]
    z = gaussian_latents(4096, latent_dim, 1)
    path = REPO_MODELS / name / "1" / "model.onnx"
    cpu, cuda = (runtime.create_session(path, device) for device in ("cpu", "cuda"))
    inputs = {cpu.get_inputs()[0].name: z}
    on_cuda = runtime.run_rows(cuda, inputs, 8192)
    np.testing.assert_allclose(on_cuda, runtime.run_rows(cpu, inputs, 8192), atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", ["ring8-wgan-gp", "stacked-digits-gan"])
def test_cuda_serves_the_float16_graphs_within_their_parity(repository, name):
    """FP16=auto: on CUDA a GAN with an fp16 graph runs it; its samples stay within the card's
    tolerance of the float32 file on the CPU (plus 1e-3 for CUDA's own float32 rounding)."""
    entry, version = repository.get(name), card(name)["versions"][0]
    assert entry.versions[1].precision == "fp16"
    z = gaussian_latents(4096, entry.card["latent_dim"], 1)
    cpu = runtime.create_session(REPO_MODELS / name / version["file"], "cpu")
    inputs = {cpu.get_inputs()[0].name: z}
    half = runtime.run_rows(entry.versions[1].session, inputs, 8192)
    tolerance = version["fp16"]["parity"]["tolerance"] + 1e-3
    np.testing.assert_allclose(half, runtime.run_rows(cpu, inputs, 8192), atol=tolerance, rtol=0)


@pytest.mark.parametrize("name", ["grid25-edm", "digits-edm"])
def test_fused_trajectory_equals_step_by_step_on_cuda(repository, name):
    entry, spec = repository.get(name), ScoreSpec.from_card(card(name))
    denoise = onnx_denoiser(entry.versions[1].session, entry.card, 8192)
    stepwise = score_samples(denoise, spec, 2048, 1, 18, "heun")
    fused = fused_score_samples(entry.versions[1].fused, spec, 2048, 1, 8192)
    np.testing.assert_allclose(fused, stepwise, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["grid25-edm", "digits-edm"])
def test_step_graphs_keep_the_state_on_cuda_and_equal_numpy(repository, name, monkeypatch):
    entry, spec = repository.get(name), ScoreSpec.from_card(card(name))
    steppers = entry.versions[1].steppers
    assert all(runtime.session_provider(s) == runtime.CUDA for s in steppers.values())
    states = []
    original = runtime.run_bound

    def recording(session, inputs, output):
        states.append(original(session, inputs, output))
        return states[-1]

    monkeypatch.setattr(runtime, "run_bound", recording)
    stepped = stepped_score_samples(steppers, spec, 2048, 1, 10, "heun", Churn(20.0))
    assert states and all(state.device_name().lower() == "cuda" for state in states)
    denoise = onnx_denoiser(entry.versions[1].session, entry.card, 8192)
    numpy_path = score_samples(denoise, spec, 2048, 1, 10, "heun", Churn(20.0))
    np.testing.assert_allclose(stepped, numpy_path, atol=1e-4, rtol=0)


@pytest.mark.parametrize("path, card", served_graphs())
def test_merged_runs_give_each_request_its_own_bits_on_cuda(path, card):
    """Dynamic batching's promise on CUDA, where a kernel may be chosen by the batch size."""
    assert_merged_runs_give_each_request_its_bits(path, card, "cuda")
