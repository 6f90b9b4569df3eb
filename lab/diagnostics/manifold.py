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
neighbours.neighbour_sweep (tiles on and above the diagonal, a running k+1 smallest per
point), and one sweep over real x fake tiles gives all four numbers (memory
O((N + M) d + workers block_size^2)). The report computes the radii once and shares them
with the duplicates (features.py): manifold_from_neighbours takes them as computed.

Each tile is computed in float32 (blocks.filter_points), a filter whose error is bounded
(blocks.filter_error), and again in float64 where float32 leaves many candidates (tight
clusters): only pairs that could change a radius or a ball membership are recomputed
exactly as sum((u - v)^2) in float64, and only exact values decide. Results do not depend
on block_size or on the number of threads.
"""

import threading
from dataclasses import dataclass, field

import numpy as np

from .blocks import (
    FILTER_BLOCK_SIZE,
    FilterPoints,
    Scratch,
    at_least,
    block_ranges,
    centre_and_scale,
    default_workers,
    exact_squared_distances,
    filter_error,
    filter_points,
    filter_tile,
    run_tiles,
)
from .errors import DiagnosticsError
from .neighbours import DENSE_FRACTION, nearest_neighbour_squared_distances

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


def knn_radii(features: np.ndarray, k: int, block_size: int = FILTER_BLOCK_SIZE) -> np.ndarray:
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
        grow = (np.sqrt(step) <= radius) & (step > threshold)  # inf: no next double
        if not grow.any():
            break
        threshold = np.where(grow, step, threshold)
    too_far = np.sqrt(threshold) > radius
    while too_far.any():  # step down until every threshold rounds to <= r
        threshold = np.where(too_far, np.nextafter(threshold, 0.0), threshold)
        too_far = np.sqrt(threshold) > radius
    return np.where(empty, -np.inf, threshold)


@dataclass
class _CrossState:
    """Shared by the tile tasks of the real x fake sweep.

    thresholds: float64 "real_pr" [N], "real_dc" [N], "fake_pr" [M] (membership_threshold);
    limits: dtype -> ("real" [N], "fake" [M]) in that dtype, above which a tile entry is
    outside every ball of that point (see _cross_limits). The rest accumulate the answers
    (see _cross_sweep).
    """

    thresholds: dict[str, np.ndarray]
    limits: dict[type, tuple[np.ndarray, np.ndarray]]
    fake_in_real: np.ndarray
    real_in_fake: np.ndarray
    real_covered: np.ndarray
    density_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    scratch: Scratch = field(default_factory=Scratch)


def _cross_limits(
    real: FilterPoints, fake: FilterPoints, thresholds: dict[str, np.ndarray], dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """Limits of dtype for real [N] and fake [M]: a pair can be inside a ball only if its
    tile entry is <= the limit.

    Entries are within filter_error of the exact scaled squared distance, so an entry above
    scale * threshold + error is outside; the limit is rounded up, never down.
    """
    dim, scale = real.exact.shape[1], real.scale_squared
    real_error = filter_error(dim, real.norms, fake.norms.max(initial=0.0), dtype)
    fake_error = filter_error(dim, fake.norms, real.norms.max(initial=0.0), dtype)
    real_threshold = np.maximum(thresholds["real_pr"], thresholds["real_dc"])
    return (
        at_least(scale * real_threshold + real_error, dtype),
        at_least(scale * thresholds["fake_pr"] + fake_error, dtype),
    )


def _cross_flags(tile: np.ndarray, state: _CrossState, rows: slice, columns: slice) -> np.ndarray:
    """bool [n, m] in scratch: entries of tile (float32 or float64) that could be in a ball."""
    real_limit, fake_limit = state.limits[tile.dtype.type]
    flags = state.scratch.get(f"flags {tile.dtype.name}", tile.shape, np.bool_)
    np.less_equal(tile, real_limit[rows, None], out=flags)
    flags |= np.less_equal(
        tile, fake_limit[None, columns], out=state.scratch.get("more", tile.shape, "?")
    )
    return flags


def _cross_tile(
    real: FilterPoints, fake: FilterPoints, state: _CrossState, rows: slice, columns: slice
) -> None:
    """Decide the pairs of one real x fake tile: filter tiles find the candidates (the few
    pairs inside or near a ball), their exact distances decide."""
    tile = filter_tile(real, fake, rows, columns, np.float32, state.scratch)
    hits = _cross_flags(tile, state, rows, columns)
    if np.count_nonzero(hits) * DENSE_FRACTION > hits.size:
        tile = filter_tile(real, fake, rows, columns, np.float64, state.scratch)
        hits &= _cross_flags(tile, state, rows, columns)
    row_index, column_index = np.divmod(np.flatnonzero(hits), tile.shape[1])
    row_index += rows.start
    column_index += columns.start
    values = exact_squared_distances(real.exact, fake.exact, row_index, column_index)
    in_dc = values <= state.thresholds["real_dc"][row_index]
    in_pr = values <= state.thresholds["real_pr"][row_index]
    in_fake = values <= state.thresholds["fake_pr"][column_index]
    with state.lock:
        state.density_count += int(np.count_nonzero(in_dc))  # Naeem eq. 3
        state.real_covered[row_index[in_dc]] = True  # Naeem eq. 4
        state.fake_in_real[column_index[in_pr]] = True  # Kynkaanniemi eq. 1 (precision)
        state.real_in_fake[row_index[in_fake]] = True  # Kynkaanniemi eq. 2 (recall)


def _cross_sweep(
    real: FilterPoints,
    fake: FilterPoints,
    thresholds: dict[str, np.ndarray],
    block_size: int,
    workers: int,
) -> _CrossState:
    """One pass over real x fake tiles; thresholds from membership_threshold.

    thresholds: "real_pr" [N], "real_dc" [N] (real balls at k_pr, k_dc), "fake_pr" [M].
    Returns the state with fake_in_real bool [M], real_in_fake bool [N], real_covered
    bool [N] and density_count (sum over fake of the real k_dc balls containing it).
    """
    n_real, n_fake = real.exact.shape[0], fake.exact.shape[0]
    state = _CrossState(
        thresholds,
        {dtype: _cross_limits(real, fake, thresholds, dtype) for dtype in (np.float32, np.float64)},
        fake_in_real=np.zeros(n_fake, dtype=bool),
        real_in_fake=np.zeros(n_real, dtype=bool),
        real_covered=np.zeros(n_real, dtype=bool),
    )
    tasks = [
        (real, fake, state, rows, columns)
        for rows in block_ranges(n_real, block_size)
        for columns in block_ranges(n_fake, block_size)
    ]
    run_tiles(_cross_tile, tasks, workers)
    return state


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


def manifold_inputs(
    real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int
) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) as float64 [N, d] and [M, d], or DiagnosticsError: non-numeric or
    non-finite values, different d, N <= max(k_pr, k_dc) or M <= k_pr."""
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise DiagnosticsError(f"real has {real.shape[1]} columns but fake has {fake.shape[1]}")
    _check_k(real.shape[0], max(k_pr, k_dc), "real")
    _check_k(fake.shape[0], k_pr, "fake")
    return real, fake


def manifold_metrics(
    real: np.ndarray,
    fake: np.ndarray,
    k_pr: int = PRECISION_RECALL_K,
    k_dc: int = DENSITY_COVERAGE_K,
    inclusive: bool = True,
    block_size: int = FILTER_BLOCK_SIZE,
    workers: int | None = None,
) -> dict[str, float]:
    """Precision, recall (k_pr), density, coverage (k_dc) of fake against real features.

    real: [N, d], fake: [M, d], any int/float dtype, computed in float64; N > max(k_pr, k_dc),
    M > k_pr. inclusive: a point at distance exactly r is inside a ball of radius r (`<=`);
    prdc uses `<` (inclusive=False), which puts a duplicate outside the zero-radius ball of its
    copies. block_size: tile side; workers: threads (default_workers()); neither changes the
    result. Returns floats: precision, recall, coverage in [0, 1], density in [0, N / k_dc],
    and coverage_expected_identical (expected_coverage_identical(N, M, k_dc)).
    """
    real, fake = manifold_inputs(real, fake, k_pr, k_dc)
    workers = default_workers() if workers is None else workers
    real_smallest = nearest_neighbour_squared_distances(real, max(k_pr, k_dc), block_size, workers)
    fake_smallest = nearest_neighbour_squared_distances(fake, k_pr, block_size, workers)
    neighbours = (real_smallest, fake_smallest)
    return manifold_from_neighbours(
        real, fake, neighbours, (k_pr, k_dc), inclusive, block_size, workers
    )


def manifold_from_neighbours(
    real: np.ndarray,
    fake: np.ndarray,
    neighbours: tuple[np.ndarray, np.ndarray],
    ks: tuple[int, int] = (PRECISION_RECALL_K, DENSITY_COVERAGE_K),
    inclusive: bool = True,
    block_size: int = FILTER_BLOCK_SIZE,
    workers: int | None = None,
) -> dict[str, float]:
    """manifold_metrics of real and fake from manifold_inputs, given their k-NN distances.

    ks: (k_pr, k_dc). neighbours: (nearest_neighbour_squared_distances of real at
    k >= max(k_pr, k_dc), of fake at k >= k_pr), float64 [N, >= max(k_pr, k_dc) + 1] and
    [M, >= k_pr + 1], computed once by the caller (the report shares the real ones with the
    duplicates). What remains is the real x fake sweep.
    """
    (real_smallest, fake_smallest), (k_pr, k_dc) = neighbours, ks
    thresholds = {
        "real_pr": membership_threshold(np.sqrt(real_smallest[:, k_pr]), inclusive),
        "real_dc": membership_threshold(np.sqrt(real_smallest[:, k_dc]), inclusive),
        "fake_pr": membership_threshold(np.sqrt(fake_smallest[:, k_pr]), inclusive),
    }
    centre, scale_squared = centre_and_scale(real, fake)
    real_points = filter_points(real, centre, scale_squared)
    fake_points = filter_points(fake, centre, scale_squared)
    workers = default_workers() if workers is None else workers
    sweep = _cross_sweep(real_points, fake_points, thresholds, block_size, workers)
    return {
        "precision": float(sweep.fake_in_real.mean()),
        "recall": float(sweep.real_in_fake.mean()),
        "density": sweep.density_count / (k_dc * fake.shape[0]),
        "coverage": float(sweep.real_covered.mean()),
        "coverage_expected_identical": expected_coverage_identical(
            real.shape[0], fake.shape[0], k_dc
        ),
    }
