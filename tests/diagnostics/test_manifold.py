"""Precision/recall/density/coverage: equal to prdc, independent of the block size."""

import contextlib
import io

import numpy as np
import pytest

from service.diagnostics import DiagnosticsError
from service.diagnostics.manifold import (
    expected_coverage_identical,
    knn_radii,
    manifold_metrics,
    membership_threshold,
)

prdc = pytest.importorskip("prdc")  # the authors' package, the reference implementation
KEYS = ("precision", "recall", "density", "coverage")


def reference_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict:
    """prdc.compute_prdc at k_pr for precision/recall and at k_dc for density/coverage."""
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sizes
        at_pr = prdc.compute_prdc(real, fake, k_pr)
        at_dc = prdc.compute_prdc(real, fake, k_dc)
    return {
        "precision": at_pr["precision"],
        "recall": at_pr["recall"],
        "density": at_dc["density"],
        "coverage": at_dc["coverage"],
    }


def features(n_real: int, n_fake: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian real features and shifted, wider fake ones, float64."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    fake = 1.2 * rng.standard_normal((n_fake, dim)) + 0.3
    return real, fake


def with_duplicates(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every 10th real row appended again (a pair of copies), fake rows 0..19 copied from real."""
    real = np.concatenate([real, real[::10]])
    fake = fake.copy()
    fake[:20] = real[5:25]
    return real, fake


@pytest.mark.parametrize(
    "n_real, n_fake, dim, seed", [(120, 90, 2, 0), (300, 400, 16, 1), (500, 350, 64, 2)]
)
@pytest.mark.parametrize("duplicated", [False, True])
def test_equals_prdc(n_real: int, n_fake: int, dim: int, seed: int, duplicated: bool) -> None:
    real, fake = features(n_real, n_fake, dim, seed)
    if duplicated:
        real, fake = with_duplicates(real, fake)
    ours = manifold_metrics(real, fake, k_pr=3, k_dc=5, inclusive=False)
    expected = reference_prdc(real, fake, 3, 5)
    for key in KEYS:
        assert ours[key] == pytest.approx(expected[key], abs=1e-6), key


def test_equals_prdc_at_one_k() -> None:
    real, fake = features(200, 250, 8, 3)
    ours = manifold_metrics(real, fake, k_pr=4, k_dc=4, inclusive=False)
    with contextlib.redirect_stdout(io.StringIO()):
        expected = prdc.compute_prdc(real, fake, 4)
    for key in KEYS:
        assert ours[key] == pytest.approx(expected[key], abs=1e-6), key


def test_radii_equal_prdc() -> None:
    real, _ = with_duplicates(*features(150, 30, 5, 4))
    expected = prdc.prdc.compute_nearest_neighbour_distances(real, 3)
    np.testing.assert_allclose(knn_radii(real, 3, block_size=16), expected, rtol=1e-12)


@pytest.mark.parametrize("inclusive", [False, True])
def test_block_size_independent(inclusive: bool) -> None:
    real, fake = with_duplicates(*features(130, 110, 6, 5))
    results = [
        manifold_metrics(real, fake, inclusive=inclusive, block_size=size)
        for size in (1, 7, 64, 4096)
    ]
    assert all(result == results[0] for result in results)


def test_collapsed_copies_inclusive_vs_strict() -> None:
    # real: 10 points, each 6 times; fake: copies of 3 of them. Radii are 0 (k = 5 < 6 copies).
    rng = np.random.default_rng(6)
    points = rng.standard_normal((10, 4))
    real = np.repeat(points, 6, axis=0)
    fake = np.repeat(points[:3], 4, axis=0)
    inclusive = manifold_metrics(real, fake, k_pr=3, k_dc=5, inclusive=True)
    strict = manifold_metrics(real, fake, k_pr=3, k_dc=5, inclusive=False)
    assert inclusive["precision"] == 1.0 and inclusive["coverage"] == pytest.approx(0.3)
    assert inclusive["density"] == pytest.approx(6 / 5)  # each fake sits in 6 zero-radius balls
    assert inclusive["recall"] == pytest.approx(0.3)
    assert all(strict[key] == 0.0 for key in KEYS)  # `<` against radius 0 admits nothing


def test_membership_threshold_decides_like_sqrt() -> None:
    rng = np.random.default_rng(7)
    radius = np.abs(rng.standard_normal(2000)) * 10.0 ** rng.integers(-3, 3, 2000)
    radius[:5] = 0.0
    squared = np.square(radius)
    offsets = np.arange(-4, 5)
    candidates = squared[:, None] + offsets[None, :] * np.spacing(squared)[:, None]
    candidates = np.maximum(candidates, 0.0)
    for inclusive in (True, False):
        threshold = membership_threshold(radius, inclusive)[:, None]
        by_sqrt = np.sqrt(candidates) <= radius[:, None] if inclusive else (
            np.sqrt(candidates) < radius[:, None]
        )
        np.testing.assert_array_equal(candidates <= threshold, by_sqrt)


def test_expected_coverage_formula() -> None:
    # 1 - C(N-1, k) / C(N-1+M, k) with N = 10, M = 5, k = 2: 1 - 36 / 91.
    assert expected_coverage_identical(10, 5, 2) == pytest.approx(1 - 36 / 91)
    assert expected_coverage_identical(10**7, 10**7, 5) == pytest.approx(1 - 0.5**5, abs=1e-6)


def test_expected_coverage_monte_carlo() -> None:
    # Same distribution, N = M = 200: the mean coverage over 200 draws is within 3 standard
    # errors of the formula.
    rng = np.random.default_rng(8)
    coverages = [
        manifold_metrics(rng.standard_normal((200, 3)), rng.standard_normal((200, 3)))["coverage"]
        for _ in range(200)
    ]
    standard_error = np.std(coverages, ddof=1) / np.sqrt(len(coverages))
    expected = expected_coverage_identical(200, 200, 5)
    assert abs(np.mean(coverages) - expected) < 3 * standard_error


@pytest.mark.parametrize(
    "real, fake, k, message",
    [
        (np.zeros((5, 2)), np.zeros((9, 2)), 5, "more than k = 5 rows"),
        (np.zeros((9, 2)), np.zeros((9, 3)), 5, "columns"),
        (np.full((9, 2), np.nan), np.zeros((9, 2)), 5, "NaN or Inf"),
        (np.zeros((9, 2)), np.zeros((9, 2)), 0, "positive integer"),
        (np.array([["a", "b"]] * 9), np.zeros((9, 2)), 5, "numeric"),
    ],
)
def test_rejects_unusable_input(real: np.ndarray, fake: np.ndarray, k: int, message: str) -> None:
    with pytest.raises(DiagnosticsError, match=message):
        manifold_metrics(real, fake, k_pr=min(k, 3), k_dc=k)
