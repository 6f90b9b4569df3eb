"""The reference's own passes kept between reports: the same values, computed once."""

import json
import threading
import time

import numpy as np
import pytest

from lab.diagnostics import diagnose
from lab.diagnostics.features import feature_metrics
from lab.diagnostics.reference_passes import (
    REFERENCE_PASSES,
    ReferencePasses,
    reference_digest,
)

FEATURES = {"type": "features", "embedding": "raw", "sample_shape": [6]}


@pytest.fixture
def memo():
    """The process's memo, empty, with its size restored afterwards."""
    entries = REFERENCE_PASSES.entries
    REFERENCE_PASSES.clear()
    yield REFERENCE_PASSES
    REFERENCE_PASSES.entries = entries
    REFERENCE_PASSES.clear()


def features(seed: int, rows: int = 900) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 6))


def report_text(samples: np.ndarray, reference: np.ndarray) -> str:
    return json.dumps(diagnose(samples, FEATURES, "test", reference_features=reference))


def test_kept_passes_give_the_fresh_report(memo) -> None:
    reference = features(0)
    first = report_text(features(1), reference)
    assert (memo.hits, memo.misses) == (0, 2)  # the k-NN sweep and K-means, computed
    assert report_text(features(1), reference) == first
    assert (memo.hits, memo.misses) == (2, 2)
    other_batch = report_text(features(2), reference)  # another batch, the same reference
    assert memo.hits == 4
    memo.entries = 0  # nothing kept: every part computed afresh
    assert report_text(features(1), reference) == first
    assert report_text(features(2), reference) == other_batch
    assert (memo.hits, memo.misses) == (4, 2)


def test_other_rows_are_other_references(memo) -> None:
    reference = features(0)
    feature_metrics(features(1), reference)
    changed = reference.copy()
    changed[17, 3] = np.nextafter(changed[17, 3], np.inf)  # one value, one ulp
    assert reference_digest(changed) != reference_digest(reference)
    assert reference_digest(reference[:, :3]) != reference_digest(reference[:, 3:])
    assert reference_digest(reference.astype(np.float32)) != reference_digest(reference)
    feature_metrics(features(1), changed)
    assert (memo.hits, memo.misses) == (0, 4)
    feature_metrics(features(1), reference[:450])  # fewer rows, fewer bins
    assert memo.misses == 6


def test_least_recently_used_leaves_first() -> None:
    memo, calls = ReferencePasses(entries=2), []

    def compute(name: str):
        calls.append(name)
        return np.arange(3.0)

    for name in ("a", "b", "a", "c", "a", "b"):  # c pushes b out, then b comes back
        memo.get(name, "part", lambda name=name: compute(name))
    assert calls == ["a", "b", "c", "b"]


def test_kept_arrays_are_read_only(memo) -> None:
    value = memo.get("digest", "part", lambda: np.zeros(3))
    with pytest.raises(ValueError, match="read-only"):
        value[0] = 1.0


def test_a_failed_computation_is_not_kept() -> None:
    memo, calls = ReferencePasses(), []

    def fails():
        calls.append(1)
        raise RuntimeError("no")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            memo.get("digest", "part", fails)
    assert len(calls) == 2
    assert memo.get("digest", "part", lambda: np.ones(1))[0] == 1.0


def test_threads_asking_at_once_compute_once() -> None:
    memo, calls = ReferencePasses(), []

    def slow():
        calls.append(1)
        time.sleep(0.3)  # the other threads ask while this one computes
        return np.ones(2)

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(memo.get("d", "p", slow))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(results) == 4
    assert all(result is results[0] for result in results)


def test_lookups_are_told_to_the_observer() -> None:
    memo, seen = ReferencePasses(), []
    memo.observer = lambda part, kept: seen.append((part, kept))
    memo.get("d", "k-NN", lambda: np.ones(1))
    memo.get("d", "k-NN", lambda: np.ones(1))
    memo.get(None, "k-NN", lambda: np.ones(1))  # no digest: not kept, not looked up
    assert seen == [("k-NN", False), ("k-NN", True)]
