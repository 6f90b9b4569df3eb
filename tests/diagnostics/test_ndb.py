"""NDB/K: K-means bins on the reference, per-bin two-proportion tests, JS divergence."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm

from lab.diagnostics import DiagnosticsError
from lab.diagnostics.kmeans import kmeans
from lab.diagnostics.ndb import (
    default_bins,
    jensen_shannon,
    ndb,
    two_proportion_p_values,
)

CENTRES = 10.0 * np.eye(8)  # 8 well-separated clusters in 8-D


def clusters(n: int, seed: int, keep: list[int] | None = None) -> np.ndarray:
    """n points, equally likely from each kept cluster of CENTRES, std 0.5."""
    rng = np.random.default_rng(seed)
    modes = np.arange(len(CENTRES)) if keep is None else np.asarray(keep)
    picks = rng.choice(modes, size=n)
    return CENTRES[picks] + 0.5 * rng.standard_normal((n, CENTRES.shape[1]))


def test_identical_distributions_flag_few_bins() -> None:
    result = ndb(clusters(4000, 0), clusters(4000, 1), n_bins=20)
    assert result["ndb"] <= 4  # alpha K = 1 expected by chance
    assert result["js_divergence"] < 0.01


def test_dropped_cluster_flags_its_bins() -> None:
    reference = clusters(4000, 0)
    result = ndb(reference, clusters(4000, 1, keep=[0, 1, 2, 3, 4, 5, 6]), n_bins=16)
    centres = kmeans(reference, 16, seed=0)
    dropped_bins = np.flatnonzero(
        np.argmin(np.linalg.norm(centres[:, None, :] - CENTRES[None, :, :], axis=2), axis=1) == 7
    )
    assert dropped_bins.size >= 1
    assert set(dropped_bins.tolist()) <= set(result["different_bins"])
    assert all(result["sample_histogram"][b] == 0 for b in dropped_bins)


def test_js_equals_scipy() -> None:
    result = ndb(clusters(2000, 2), clusters(1500, 3, keep=[0, 1, 2]), n_bins=10)
    p = np.array(result["reference_histogram"]) / 2000
    q = np.array(result["sample_histogram"]) / 1500
    assert result["js_divergence"] == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-10)
    assert jensen_shannon(p, p) == 0.0


def test_p_values_equal_normal_survival() -> None:
    counts_a, counts_b = np.array([30, 50, 0, 7]), np.array([45, 50, 0, 0])
    p_values = two_proportion_p_values(counts_a, 100, counts_b, 120)
    pooled = (counts_a + counts_b) / 220
    se = np.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 120))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(counts_a / 100 - counts_b / 120) / se
    expected = np.where(se > 0, 2 * norm.sf(z), 1.0)
    np.testing.assert_allclose(p_values, expected, rtol=1e-12)


def test_deterministic_for_a_seed() -> None:
    reference, samples = clusters(1000, 4), clusters(800, 5)
    assert ndb(reference, samples, seed=3) == ndb(reference, samples, seed=3)


def test_default_bins() -> None:
    assert (default_bins(100_000), default_bins(1000), default_bins(39)) == (100, 50, 1)


def test_rejects_too_small_reference() -> None:
    with pytest.raises(DiagnosticsError, match="2 <= K"):
        ndb(clusters(30, 0), clusters(30, 1))
