"""The report's shared distance passes give the values of the previous per-metric passes.

The previous computations are kept here as reference implementations: the near-duplicate
pairs from float64 tiles |u|^2 - 2 u.v + |v|^2 over all ordered pairs (blocks.tiles), the
duplicates' threshold from its own k = 1 neighbour sweep, K-means followed by a fresh
assignment pass for NDB's reference histogram. The shared path decides near pairs on the
exact sum((u - v)^2) instead of the expansion; the two can differ only for a pair whose
squared distance lies within blocks.rounding_bound of the threshold's square, and the tests
check that no pair is that close, so every value must be equal, not merely close.
"""

import numpy as np
import pytest

from lab.diagnostics.blocks import (
    nearest_centres,
    rounding_bound,
    squared_norms,
    tiles,
)
from lab.diagnostics.duplicates import (
    duplicates,
    exact_duplicates,
    near_duplicate_pairs,
    support_estimate,
)
from lab.diagnostics.features import feature_metrics
from lab.diagnostics.kmeans import MAX_ITERATIONS, cluster_sums, kmeans_fit
from lab.diagnostics.manifold import manifold_metrics
from lab.diagnostics.ndb import default_bins, ndb
from lab.diagnostics.neighbours import nearest_neighbour_squared_distances, neighbour_sweep


def previous_near_pairs(samples: np.ndarray, threshold: float) -> tuple[int, np.ndarray]:
    """near_duplicate_pairs as it was: every ordered pair in float64 expansion tiles."""
    limit = threshold * threshold
    ordered_pairs = 0
    has_partner = np.zeros(samples.shape[0], dtype=bool)
    for rows, columns, tile in tiles(samples, samples, 2048):
        close = tile <= limit
        if rows.start < columns.stop and columns.start < rows.stop:  # tile crosses the diagonal
            own = np.arange(max(rows.start, columns.start), min(rows.stop, columns.stop))
            close[own - rows.start, own - columns.start] = False
        ordered_pairs += int(np.count_nonzero(close))
        has_partner[rows] |= close.any(axis=1)
    return ordered_pairs // 2, has_partner


def previous_duplicates(samples: np.ndarray, reference: np.ndarray) -> dict:
    """duplicates(samples, reference) as it was: its own k = 1 sweep of the reference."""
    nearest = nearest_neighbour_squared_distances(reference, 1)[:, 1]
    threshold = 0.1 * float(np.sqrt(np.median(nearest)))
    pairs, has_partner = previous_near_pairs(samples, threshold)
    n = samples.shape[0]
    return {
        **exact_duplicates(samples),
        "near_threshold": threshold,
        "near_pairs": pairs,
        "near_fraction": float(has_partner.mean()),
        "support_estimate": support_estimate(n, pairs),
        "support_lower_bound": n * (n - 1) / 2.0,
    }


def previous_kmeans(
    points: np.ndarray, n_bins: int, seed: int, iterations: int = MAX_ITERATIONS
) -> np.ndarray:
    """kmeans as it was: norms recomputed by every nearest_centres call, no labels kept."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(points.shape[0]))]
    closest = nearest_centres(points, points[chosen])[1]
    for _ in range(1, n_bins):
        total = closest.sum()
        if total <= 0:
            chosen.append(chosen[-1])
            continue
        chosen.append(int(rng.choice(points.shape[0], p=closest / total)))
        closest = np.minimum(closest, nearest_centres(points, points[chosen[-1:]])[1])
    centres = points[chosen].copy()
    columns = np.ascontiguousarray(points.T)
    assignment = np.full(points.shape[0], -1)
    for _ in range(iterations):
        updated = nearest_centres(points, centres)[0]
        if np.array_equal(updated, assignment):
            break
        assignment = updated
        counts = np.bincount(assignment, minlength=n_bins)
        sums = cluster_sums(columns, assignment, n_bins)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def previous_ndb_histograms(reference: np.ndarray, samples: np.ndarray) -> tuple[list, list]:
    """NDB's two bin histograms as they were: K-means, then two fresh assignment passes."""
    n_bins = default_bins(reference.shape[0])
    centres = previous_kmeans(reference, n_bins, 0)
    return (
        np.bincount(nearest_centres(reference, centres)[0], minlength=n_bins).tolist(),
        np.bincount(nearest_centres(samples, centres)[0], minlength=n_bins).tolist(),
    )


def batch_with_duplicates(seed: int, n_real: int, n_fake: int, dim: int) -> tuple:
    """(reference, batch) float64: the batch holds exact copies, near copies and collapsed rows."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((n_real, dim))
    batch = 1.1 * rng.standard_normal((n_fake, dim)) + 0.1
    batch[:30] = batch[30:60] + 0.01 * rng.standard_normal((30, dim))  # near copies
    batch[60:80] = batch[80:100]  # exact copies
    batch[100:160] = batch[160] + 1e-9 * rng.standard_normal((60, dim))  # a collapsed cluster
    return reference, batch


def assert_no_pair_at_the_threshold(points: np.ndarray, threshold: float) -> None:
    """No pair of distinct rows with a squared distance within the rounding bound of
    threshold^2 (see the module; identical rows are at exactly 0 on both paths)."""
    exact = np.square(points[:, None, :] - points[None, :, :]).sum(axis=2)
    norms = squared_norms(points)
    bound = rounding_bound(points.shape[1], norms, norms)
    assert not np.any((np.abs(exact - threshold * threshold) <= bound) & (exact > 0))


@pytest.mark.parametrize("seed, n_real, n_fake, dim", [(0, 400, 300, 2), (1, 900, 700, 16)])
def test_report_section_equals_previous_passes(seed: int, n_real: int, n_fake: int, dim: int):
    reference, batch = batch_with_duplicates(seed, n_real, n_fake, dim)
    section = feature_metrics(batch, reference)
    expected = previous_duplicates(batch, reference)
    assert_no_pair_at_the_threshold(batch, expected["near_threshold"])
    assert expected["near_pairs"] > 100  # the near pairs are there to be counted
    assert section["duplicates"] == expected
    assert section["manifold"] == manifold_metrics(reference, batch)
    histograms = previous_ndb_histograms(reference, batch)
    assert (section["ndb"]["reference_histogram"], section["ndb"]["sample_histogram"]) == histograms


@pytest.mark.parametrize("threshold", [1e-6, 0.05, 0.4, 3.0])
@pytest.mark.parametrize("block_size", [16, 1024])
def test_near_pairs_equal_previous(threshold: float, block_size: int) -> None:
    _, batch = batch_with_duplicates(2, 10, 500, 8)
    assert_no_pair_at_the_threshold(batch, threshold)
    pairs, has_partner = near_duplicate_pairs(batch, threshold, block_size)
    expected_pairs, expected_partner = previous_near_pairs(batch, threshold)
    assert pairs == expected_pairs
    np.testing.assert_array_equal(has_partner, expected_partner)


def test_near_pairs_exact_on_ties() -> None:
    # Integer points 2^-10 apart around centres 2^12 apart, which float32 cannot resolve:
    # squared distances are exact, and a pair exactly at the threshold is inside (<=).
    rng = np.random.default_rng(3)
    points = 2.0**12 * np.eye(3, 6)[np.arange(300) % 3] + rng.integers(0, 3, (300, 6)) * 2.0**-10
    exact = np.square(points[:, None, :] - points[None, :, :]).sum(axis=2)
    upper = np.triu(np.ones_like(exact, dtype=bool), 1)
    for threshold in (0.0, 2.0**-10, np.sqrt(3) * 2.0**-10):
        close = (exact <= threshold * threshold) & upper
        pairs, has_partner = near_duplicate_pairs(points, threshold, block_size=64)
        assert pairs == np.count_nonzero(close)
        np.testing.assert_array_equal(has_partner, close.any(axis=0) | close.any(axis=1))


@pytest.mark.parametrize("workers", [1, 3])
def test_one_sweep_equals_two(workers: int) -> None:
    _, batch = batch_with_duplicates(4, 10, 600, 12)
    smallest, near = neighbour_sweep(batch, 3, 0.3**2, block_size=100, workers=workers)
    np.testing.assert_array_equal(smallest, nearest_neighbour_squared_distances(batch, 3))
    pairs, has_partner = near_duplicate_pairs(batch, 0.3)
    assert near.pairs == pairs
    np.testing.assert_array_equal(near.has_partner, has_partner)


def test_duplicates_alone_equal_previous() -> None:
    reference, batch = batch_with_duplicates(5, 300, 400, 4)
    assert duplicates(batch, reference) == previous_duplicates(batch, reference)


def kmeans_points(kind: str) -> np.ndarray:
    """Seeded points for K-means: Gaussian; or 10 distinct integer rows, each many times
    (k-means++ runs out of distinct rows for 12 bins and repeats a centre: exact ties)."""
    rng = np.random.default_rng(6)
    if kind == "gaussian":
        return rng.standard_normal((2000, 5))
    distinct = rng.integers(0, 4, (10, 3)).astype(np.float64)
    return distinct[rng.integers(0, 10, 600)]


@pytest.mark.parametrize("kind", ["gaussian", "copies"])
@pytest.mark.parametrize("iterations", [2, MAX_ITERATIONS])
def test_kmeans_fit_equals_previous(monkeypatch, kind: str, iterations: int) -> None:
    # Converged or stopped early (2 iterations), the labels come from a fresh assignment
    # pass; the centres, labels and inertia are those of plain Lloyd passes, bit for bit.
    monkeypatch.setattr("lab.diagnostics.kmeans.MAX_ITERATIONS", iterations)
    points = kmeans_points(kind)
    fit = kmeans_fit(points, 12, seed=1)
    centres = previous_kmeans(points, 12, 1, iterations)
    labels, squared = nearest_centres(points, centres)
    np.testing.assert_array_equal(fit.centres, centres)
    np.testing.assert_array_equal(fit.labels, labels)
    assert fit.inertia == float(squared.sum())


def test_ndb_equals_previous() -> None:
    reference, batch = batch_with_duplicates(7, 1500, 900, 6)
    result = ndb(reference, batch)
    expected = previous_ndb_histograms(reference, batch)
    assert (result["reference_histogram"], result["sample_histogram"]) == expected


@pytest.mark.parametrize("workers", [2, 4])
def test_nearest_centres_thread_count_independent(workers: int) -> None:
    rng = np.random.default_rng(8)
    points, centres = rng.standard_normal((5000, 9)), rng.standard_normal((40, 9))
    index, squared = nearest_centres(points, centres, block_size=512, workers=workers)
    expected_index, expected_squared = nearest_centres(points, centres, block_size=512, workers=1)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_array_equal(squared, expected_squared)
