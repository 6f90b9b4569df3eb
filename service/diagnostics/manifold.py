"""k-NN manifold metrics: precision and recall, density and coverage, at any size.

Precision and recall: Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models", eq. 1-2, k = 3: the real manifold is the union of balls around
each real feature with radius the distance to its k-th nearest real neighbour;
precision = fraction of fake features inside it, recall = fraction of real features inside
the fake manifold built the same way.
Density and coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
Generative Models", eq. 3-4, k = 5: density = (1 / kM) sum_j sum_i 1[Y_j in B(X_i, r_i)],
coverage = (1 / N) sum_i 1[exists j: Y_j in B(X_i, r_i)].

Definitions follow `prdc.compute_prdc` (the authors' package): a radius is the (k+1)-th
smallest distance of a row that includes the point's own zero distance, so an exact duplicate
counts as a neighbour at distance 0. Unlike prdc, nothing N x M is held: radii come from
row-block x column-block tiles with a running k+1 smallest per row, and one sweep over
real x fake tiles gives all four numbers (memory O((N + M) d + block_size^2)).
"""

import numpy as np

from .blocks import (
    DEFAULT_BLOCK_SIZE,
    block_ranges,
    squared_distances,
    squared_norms,
    tile_buffer,
)
from .errors import DiagnosticsError

PRECISION_RECALL_K = 3  # Kynkaanniemi et al. 2019, section 3
DENSITY_COVERAGE_K = 5  # Naeem et al. 2020, section 4 (k = 5 throughout their experiments)


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    """features as float64 [N, d] with finite values, or DiagnosticsError naming `name`."""
    array = np.asarray(features)
    if array.dtype.kind not in "iuf" or array.ndim != 2:
        raise DiagnosticsError(f"{name} features must be a numeric [N, d] array")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise DiagnosticsError(f"{name} features contain NaN or Inf")
    return array


def _merge_smallest(running: np.ndarray, tile: np.ndarray) -> np.ndarray:
    """The m smallest of each row of [running | tile]; running float64 [n, m] (inf = empty).

    Only tile entries below the row's current m-th smallest can enter, and after the first
    column block few do: they are gathered sparsely instead of partitioning the whole tile.
    """
    m = running.shape[1]
    hit = tile < running.max(axis=1)[:, None]
    counts = np.count_nonzero(hit, axis=1)
    if counts.sum() * 8 > tile.size:  # dense (first block): partition everything
        both = np.concatenate([running, tile], axis=1)
        return np.partition(both, m - 1, axis=1)[:, :m]
    rows, columns = np.nonzero(hit)
    if rows.size == 0:
        return running
    padded = np.full((tile.shape[0], int(counts.max())), np.inf)
    starts = np.cumsum(counts) - counts
    padded[rows, np.arange(rows.size) - starts[rows]] = tile[rows, columns]
    touched = np.flatnonzero(counts)
    both = np.concatenate([running[touched], padded[touched]], axis=1)
    running[touched] = np.partition(both, m - 1, axis=1)[:, :m]
    return running


def nearest_neighbour_squared_distances(
    features: np.ndarray, k: int, block_size: int = DEFAULT_BLOCK_SIZE
) -> np.ndarray:
    """The k + 1 smallest squared distances of each row to all rows, itself included.

    features: float64 [N, d], N > k. Returns float64 [N, k + 1], sorted ascending; column 0 is
    the point itself (0) and column k the squared distance to its k-th nearest neighbour,
    exact duplicates counting as neighbours at 0 (prdc's get_kth_value(..., k + 1)).
    """
    norms, buffer = squared_norms(features), tile_buffer(block_size)
    smallest = np.empty((features.shape[0], k + 1))
    for row_slice in block_ranges(features.shape[0], block_size):
        running = np.full((row_slice.stop - row_slice.start, k + 1), np.inf)
        for column_slice in block_ranges(features.shape[0], block_size):
            tile = squared_distances(
                features[row_slice],
                features[column_slice],
                norms[row_slice],
                norms[column_slice],
                buffer,
            )
            running = _merge_smallest(running, tile)
        smallest[row_slice] = np.sort(running, axis=1)
    return smallest


def knn_radii(features: np.ndarray, k: int, block_size: int = DEFAULT_BLOCK_SIZE) -> np.ndarray:
    """Distance of each row of features [N, d] to its k-th nearest other row: float64 [N].

    As prdc's compute_nearest_neighbour_distances(features, k), without the N x N matrix.
    """
    features = _as_features(features, "input")
    _check_k(features.shape[0], k, "input")
    return np.sqrt(nearest_neighbour_squared_distances(features, k, block_size)[:, k])


def membership_threshold(radius: np.ndarray, inclusive: bool) -> np.ndarray:
    """Largest t per radius such that squared distance s <= t exactly when sqrt(s) (<= or <) r.

    radius: float64 [n] >= 0. Comparing squared distances with t decides as comparing the
    rounded distance sqrt(s) with r (prdc compares distances), so no tile needs a sqrt.
    sqrt rounds monotonically, so {s : sqrt(s) <= r} is an interval [0, t] with t within a
    few ulps of r^2. Strict: sqrt(s) < r iff sqrt(s) <= nextafter(r, 0); r = 0 gives -inf.
    """
    radius = np.asarray(radius, dtype=np.float64)
    if not inclusive:
        radius = np.where(radius > 0, np.nextafter(radius, 0.0), -1.0)  # -1: nothing inside
    empty, radius = radius < 0, np.maximum(radius, 0.0)
    threshold = np.square(radius)
    while True:  # step up while the next double still rounds to <= r
        step = np.nextafter(threshold, np.inf)
        grow = np.sqrt(step) <= radius
        if not grow.any():
            break
        threshold = np.where(grow, step, threshold)
    too_far = np.sqrt(threshold) > radius
    while too_far.any():  # step down until every threshold rounds to <= r
        threshold = np.where(too_far, np.nextafter(threshold, 0.0), threshold)
        too_far = np.sqrt(threshold) > radius
    return np.where(empty, -np.inf, threshold)


def _cross_sweep(
    real: np.ndarray, fake: np.ndarray, thresholds: dict[str, np.ndarray], block_size: int
) -> dict[str, np.ndarray | int]:
    """One pass over real x fake tiles; thresholds from membership_threshold.

    thresholds: "real_pr" [N], "real_dc" [N] (real balls at k_pr, k_dc), "fake_pr" [M].
    Returns "fake_in_real" bool [M], "real_in_fake" bool [N], "real_covered" bool [N] and
    "density_count" int (sum over fake of the real k_dc balls containing it).
    """
    real_norms, fake_norms = squared_norms(real), squared_norms(fake)
    fake_in_real = np.zeros(fake.shape[0], dtype=bool)
    real_in_fake = np.zeros(real.shape[0], dtype=bool)
    real_covered = np.zeros(real.shape[0], dtype=bool)
    density_count, buffer = 0, tile_buffer(block_size)
    shared = thresholds["real_pr"] is thresholds["real_dc"]  # k_pr == k_dc: one comparison
    for rows in block_ranges(real.shape[0], block_size):
        real_pr, real_dc = thresholds["real_pr"][rows, None], thresholds["real_dc"][rows, None]
        for columns in block_ranges(fake.shape[0], block_size):
            tile = squared_distances(
                real[rows], fake[columns], real_norms[rows], fake_norms[columns], buffer
            )
            in_dc = tile <= real_dc
            density_count += int(np.count_nonzero(in_dc))  # Naeem eq. 3
            real_covered[rows] |= in_dc.any(axis=1)  # Naeem eq. 4
            in_pr = in_dc if shared else tile <= real_pr
            fake_in_real[columns] |= in_pr.any(axis=0)  # Kynkaanniemi eq. 1 (precision)
            real_in_fake[rows] |= (tile <= thresholds["fake_pr"][None, columns]).any(axis=1)
    return {
        "fake_in_real": fake_in_real,
        "real_in_fake": real_in_fake,
        "real_covered": real_covered,
        "density_count": density_count,
    }


def expected_coverage_identical(n_real: int, n_fake: int, k: int = DENSITY_COVERAGE_K) -> float:
    """Expected coverage when real and fake are iid draws of one continuous distribution.

    Real X_i is covered iff one of its k nearest neighbours among the pooled N - 1 other real
    and M fake points is fake (then that fake is closer than its k-th nearest real). The pooled
    points are exchangeable, so those k neighbours are a uniform k-subset:
    E[coverage] = 1 - C(N - 1, k) / C(N - 1 + M, k) = 1 - prod_{t<k} (N-1-t) / (N-1+M-t)
    (Naeem et al. 2020, section 4; 1 - 1/2^k as M = N grows).
    """
    product = 1.0
    for t in range(k):
        product *= max(n_real - 1 - t, 0) / (n_real - 1 + n_fake - t)
    return 1.0 - product


def _check_k(n_points: int, k: int, name: str) -> None:
    """DiagnosticsError unless 1 <= k < n_points (a k-th neighbour other than itself exists)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DiagnosticsError(f"k must be a positive integer, got {k!r}")
    if n_points <= k:
        raise DiagnosticsError(f"{name} features need more than k = {k} rows, got {n_points}")


def manifold_metrics(
    real: np.ndarray,
    fake: np.ndarray,
    k_pr: int = PRECISION_RECALL_K,
    k_dc: int = DENSITY_COVERAGE_K,
    inclusive: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """Precision, recall (k_pr), density, coverage (k_dc) of fake against real features.

    real: [N, d], fake: [M, d], any int/float dtype, computed in float64; N > max(k_pr, k_dc),
    M > k_pr. inclusive: a point at distance exactly r is inside a ball of radius r (`<=`);
    prdc uses `<` (inclusive=False), which puts a duplicate outside the zero-radius ball of its
    copies. Returns floats: precision, recall, coverage in [0, 1], density in [0, N / k_dc],
    and coverage_expected_identical (expected_coverage_identical(N, M, k_dc)).
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise DiagnosticsError(f"real has {real.shape[1]} columns but fake has {fake.shape[1]}")
    _check_k(real.shape[0], max(k_pr, k_dc), "real")
    _check_k(fake.shape[0], k_pr, "fake")
    real_smallest = nearest_neighbour_squared_distances(real, max(k_pr, k_dc), block_size)
    fake_smallest = nearest_neighbour_squared_distances(fake, k_pr, block_size)
    real_pr = membership_threshold(np.sqrt(real_smallest[:, k_pr]), inclusive)
    real_dc = (
        real_pr
        if k_dc == k_pr
        else membership_threshold(np.sqrt(real_smallest[:, k_dc]), inclusive)
    )
    fake_pr = membership_threshold(np.sqrt(fake_smallest[:, k_pr]), inclusive)
    sweep = _cross_sweep(
        real, fake, {"real_pr": real_pr, "real_dc": real_dc, "fake_pr": fake_pr}, block_size
    )
    return {
        "precision": float(sweep["fake_in_real"].mean()),
        "recall": float(sweep["real_in_fake"].mean()),
        "density": sweep["density_count"] / (k_dc * fake.shape[0]),
        "coverage": float(sweep["real_covered"].mean()),
        "coverage_expected_identical": expected_coverage_identical(
            real.shape[0], fake.shape[0], k_dc
        ),
    }
