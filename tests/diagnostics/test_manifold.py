"""Precision/recall/density/coverage: equal to prdc, independent of the block size."""

import contextlib
import io

import numpy as np
import pytest

from lab.diagnostics import DiagnosticsError
from lab.diagnostics.blocks import (
    Scratch,
    centre_and_scale,
    filter_error,
    filter_points,
    filter_tile,
)
from lab.diagnostics.manifold import (
    expected_coverage_identical,
    knn_radii,
    manifold_metrics,
    membership_threshold,
)
from lab.diagnostics.neighbours import nearest_neighbour_squared_distances

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
        manifold_metrics(real, fake, inclusive=inclusive, block_size=size, workers=1)
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
        by_sqrt = (
            np.sqrt(candidates) <= radius[:, None]
            if inclusive
            else (np.sqrt(candidates) < radius[:, None])
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


def brute_force_metrics(
    real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int, inclusive: bool
) -> dict[str, float]:
    """All four metrics from full float64 matrices of sum((u - v)^2): the pure float64 path."""

    def squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.square(a[:, None, :] - b[None, :, :]).sum(axis=2)

    real_real, fake_fake, real_fake = squared(real, real), squared(fake, fake), squared(real, fake)
    real_sorted, fake_sorted = np.sort(real_real, axis=1), np.sort(fake_fake, axis=1)

    def inside(distance: np.ndarray, radius: np.ndarray) -> np.ndarray:
        return distance <= radius if inclusive else distance < radius

    distances, fake_distances = np.sqrt(real_fake), np.sqrt(real_fake).T
    in_pr = inside(distances, np.sqrt(real_sorted[:, k_pr])[:, None])
    in_dc = inside(distances, np.sqrt(real_sorted[:, k_dc])[:, None])
    in_fake = inside(fake_distances, np.sqrt(fake_sorted[:, k_pr])[:, None])
    return {
        "precision": float(in_pr.any(axis=0).mean()),
        "recall": float(in_fake.any(axis=0).mean()),
        "density": float(in_dc.sum() / (k_dc * fake.shape[0])),
        "coverage": float(in_dc.any(axis=1).mean()),
    }


def integer_features(clustered: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features in {0, 1, 2}^6, exact squared distances with ties everywhere. clustered: the
    same scaled by 2^-10 around 3 centres 2^12 apart, which float32 cannot resolve (float64
    can, and every sum((u - v)^2) is still exact)."""
    rng = np.random.default_rng(seed)
    real = rng.integers(0, 3, (260, 6)).astype(np.float64)
    fake = rng.integers(0, 3, (230, 6)).astype(np.float64)
    if clustered:
        centres = 2.0**12 * np.eye(3, 6)
        real = centres[np.arange(260) % 3] + real * 2.0**-10
        fake = centres[np.arange(230) % 3] + fake * 2.0**-10
    return real, fake


@pytest.mark.parametrize("clustered", [False, True])
@pytest.mark.parametrize("inclusive", [False, True])
def test_filter_equals_float64_on_ties(clustered: bool, inclusive: bool) -> None:
    real, fake = integer_features(clustered, 9)
    ours = manifold_metrics(real, fake, k_pr=3, k_dc=5, inclusive=inclusive, block_size=64)
    expected = brute_force_metrics(real, fake, 3, 5, inclusive)
    assert {key: ours[key] for key in KEYS} == expected


def test_neighbour_distances_exact_on_ties() -> None:
    real, _ = integer_features(True, 10)
    expected = np.sort(np.square(real[:, None, :] - real[None, :, :]).sum(axis=2), axis=1)
    ours = nearest_neighbour_squared_distances(real, 7, block_size=50)
    np.testing.assert_array_equal(ours, expected[:, :8])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filter_error_bounds_tile(dtype: type) -> None:
    # Large common offsets (cancellation) and a spread of norms: every filter tile entry is
    # within filter_error of the exact scaled squared distance.
    rng = np.random.default_rng(11)
    rows = rng.standard_normal((300, 48)) * rng.uniform(0.01, 10.0, (300, 1)) + 30.0
    columns = rng.standard_normal((200, 48)) + 30.0
    centre, scale = centre_and_scale(rows, columns)
    row_points = filter_points(rows, centre, scale)
    column_points = filter_points(columns, centre, scale)
    tile = filter_tile(row_points, column_points, slice(0, 300), slice(0, 200), dtype, Scratch())
    exact = scale * np.square(rows[:, None, :] - columns[None, :, :]).sum(axis=2)
    error = filter_error(48, row_points.norms, column_points.norms.max(), dtype)
    assert np.all(np.abs(tile - exact) <= error[:, None])
    assert np.abs(tile - exact).max() > error.min() / 1000  # the bound is not vacuous


@pytest.mark.parametrize("scale", [2.0**-120, 2.0**120])
def test_scale_free(scale: float) -> None:
    # Power-of-two scaling is exact in float64; float32 would underflow or overflow unscaled.
    real, fake = with_duplicates(*features(150, 120, 8, 12))
    assert manifold_metrics(real * scale, fake * scale) == manifold_metrics(real, fake)


def test_thread_count_independent() -> None:
    real, fake = with_duplicates(*features(700, 600, 16, 13))
    one = manifold_metrics(real, fake, block_size=128, workers=1)
    two = manifold_metrics(real, fake, block_size=128, workers=2)
    assert one == two
    np.testing.assert_array_equal(
        nearest_neighbour_squared_distances(real, 5, block_size=100, workers=1),
        nearest_neighbour_squared_distances(real, 5, block_size=100, workers=2),
    )


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


def test_membership_threshold_of_an_infinite_radius_terminates() -> None:
    """An overflowed k-NN radius (inf) has no next double: the step-up loop must stop."""
    threshold = membership_threshold(np.array([np.inf, 1.0]), inclusive=True)
    assert threshold[0] == np.inf and np.sqrt(threshold[1]) <= 1.0
