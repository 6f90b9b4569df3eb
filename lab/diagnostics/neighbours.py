"""One pass over a point set's own pairs: k nearest neighbours and the pairs within a distance.

The k-NN radii of the manifold metrics (manifold.py) and the near duplicates of a batch
(duplicates.py) both need the set's [N, N] squared-distance matrix; neighbour_sweep walks it
once for both. Only tiles on and above the diagonal are computed (the distance is symmetric),
with a running k + 1 smallest per point (memory O(N d + workers block_size^2)).

Each tile is computed in float32 (blocks.filter_points), a filter whose error is bounded
(blocks.filter_error), and again in float64 where float32 leaves many candidates (tight
clusters): only pairs that could change a radius, or lie within the filter error of the
near-pair distance, are recomputed exactly as sum((u - v)^2) in float64, and only exact
values decide (a pair far below the distance is inside whatever its rounding). Results do not
depend on block_size or on the number of threads.
"""

import threading
from dataclasses import dataclass, field

import numpy as np

from .blocks import (
    FILTER_BLOCK_SIZE,
    FilterPoints,
    Scratch,
    at_least,
    at_most,
    block_ranges,
    centre_and_scale,
    default_workers,
    exact_squared_distances,
    filter_error,
    filter_points,
    filter_tile,
    run_tiles,
)

DENSE_FRACTION = 64  # a float32 tile with over 1/64 candidates is narrowed in float64 first


@dataclass
class NearPairs:
    """Pairs i < j of a point set with exact squared distance <= limit (float64, squared
    feature units): their count, and has_partner bool [N], the points in at least one."""

    limit: float
    pairs: int
    has_partner: np.ndarray


def _merge_smallest(
    running: np.ndarray, largest: np.ndarray, owner: np.ndarray, values: np.ndarray
) -> None:
    """Merge values into the m smallest of their owner rows of running, in place.

    running: float64 [N, m], each row's m smallest so far (inf = empty); largest: float64
    [N], each row's largest of them (kept up to date here); owner: int [p] rows of running;
    values: float64 [p]. Only values below the row's current m-th can enter.
    """
    keep = values < largest[owner]
    owner, values = owner[keep], values[keep]
    if owner.size == 0:
        return
    order = np.argsort(owner, kind="stable")
    owner, values = owner[order], values[order]
    touched, starts, counts = np.unique(owner, return_index=True, return_counts=True)
    padded = np.full((touched.size, int(counts.max())), np.inf)
    slot = np.arange(owner.size) - np.repeat(starts, counts)
    padded[np.repeat(np.arange(touched.size), counts), slot] = values
    both = np.concatenate([running[touched], padded], axis=1)
    m = running.shape[1]
    smallest = np.partition(both, m - 1, axis=1)[:, :m]
    running[touched], largest[touched] = smallest, smallest[:, m - 1]


@dataclass
class _SweepState:
    """Shared by the tile tasks of one sweep: the running k + 1 smallest exact squared
    distances per point (float64 [N, k + 1], None without k-NN) and the largest of each
    row's (float64 [N]), the near pairs being counted (None without), the filter_error of
    each point (float64 [N]) for each filter dtype, the lock guarding running, largest and
    near, and per-thread scratch."""

    running: np.ndarray | None
    k: int
    near: NearPairs | None
    errors: dict[type, np.ndarray]
    lock: threading.Lock = field(default_factory=threading.Lock)
    scratch: Scratch = field(default_factory=Scratch)

    def __post_init__(self) -> None:
        self.running_largest = None if self.running is None else self.running.max(axis=1)

    def largest(self, rows: slice) -> np.ndarray:
        """float64 [n]: each row's current (k + 1)-th smallest (inf while fewer are known)."""
        with self.lock:  # another thread may be rewriting these rows
            return self.running_largest[rows].copy()

    def merge(self, owner: np.ndarray, values: np.ndarray) -> None:
        """_merge_smallest into running; the caller holds the lock."""
        _merge_smallest(self.running, self.running_largest, owner, values)


def _candidate_limits(
    running_largest: np.ndarray, error: np.ndarray, scale: float, dtype: type
) -> np.ndarray:
    """[n] of dtype: a tile entry of row i can be one of row i's k + 1 smallest only if it is
    <= limit i.

    running_largest: float64 [n], the largest of each row's k + 1 smallest exact squared
    distances so far (inf while fewer are known); error: float64 [n], filter_error of the
    rows. An entry is within error of scale * its exact value, so an entry whose exact value
    could still enter (exact < running_largest) is <= scale * running_largest + error.
    Rows whose k + 1 smallest are all 0 (k + 1 copies) take nothing more: -inf.
    """
    limit = np.where(running_largest > 0, scale * running_largest + error, -np.inf)
    return at_least(limit, dtype)


def _first_pairs(tile: np.ndarray, running_largest: np.ndarray, k: int) -> np.ndarray:
    """(rows, columns) [2, p] in tile of the k + 1 smallest entries of each row with nothing
    known yet (running_largest inf): exact, they give the row a finite bound at once, so that
    clusters of copies do not make the whole tile a candidate."""
    unknown = np.flatnonzero(np.isinf(running_largest))
    if unknown.size == 0 or tile.shape[1] <= k:
        return np.empty((2, 0), dtype=np.intp)
    columns = np.argpartition(tile[unknown], k, axis=1)[:, : k + 1]
    return np.stack([np.repeat(unknown, k + 1), columns.ravel()])


def _fold_pairs(
    points: FilterPoints, state: _SweepState, pairs: np.ndarray, symmetric: bool
) -> None:
    """Merge the exact squared distances of pairs (point indices [2, p]) into state.running:
    into the rows of pairs[0], and also of pairs[1] when symmetric."""
    values = exact_squared_distances(points.exact, points.exact, pairs[0], pairs[1])
    _merge_pairs(state, pairs, values, symmetric)


def _merge_pairs(
    state: _SweepState, pairs: np.ndarray, values: np.ndarray, symmetric: bool
) -> None:
    """Merge values (float64 [p], the exact squared distances of pairs [2, p]) into
    state.running: into the rows of pairs[0], and also of pairs[1] when symmetric."""
    with state.lock:
        state.merge(pairs[0], values)
        if symmetric:
            state.merge(pairs[1], values)


def _near_limits(points: FilterPoints, state: _SweepState, rows: slice, dtype: type) -> np.ndarray:
    """[n] of dtype: a tile entry of row i can be within state.near.limit only if it is <=
    limit i (the scaled limit plus the row's filter error, rounded up)."""
    scaled = points.scale_squared * state.near.limit  # a power of four: exact
    return at_least(scaled + state.errors[dtype][rows], dtype)


def _knn_flags(
    tile: np.ndarray,
    points: FilterPoints,
    state: _SweepState,
    rows: slice,
    columns: slice,
    near: bool = False,
) -> np.ndarray:
    """bool [n, m] in scratch: entries of tile (rows x columns, float32 or float64) that
    could still enter the k + 1 smallest of their row or, off the diagonal, of their column,
    or, with `near`, be within the near-pair limit."""
    dtype, scale = tile.dtype.type, points.scale_squared
    errors = state.errors[dtype]
    limit = _candidate_limits(state.largest(rows), errors[rows], scale, dtype)
    if near:  # one pass for both: a row's limit is the larger
        limit = np.maximum(limit, _near_limits(points, state, rows, dtype))
    flags = state.scratch.get(f"flags {tile.dtype.name}", tile.shape, np.bool_)
    np.less_equal(tile, limit[:, None], out=flags)
    if rows != columns:
        limit = _candidate_limits(state.largest(columns), errors[columns], scale, dtype)
        flags |= np.less_equal(tile, limit[None, :], out=state.scratch.get("more", tile.shape, "?"))
    return flags


def _dense(flags: np.ndarray) -> bool:
    """True when over 1/DENSE_FRACTION of a tile's entries are flagged."""
    return np.count_nonzero(flags) * DENSE_FRACTION > flags.size


def _knn_tile(
    tile: np.ndarray, points: FilterPoints, state: _SweepState, rows: slice, columns: slice
) -> None:
    """Fold the pairs of one float32 tile (rows x columns, rows <= columns) into
    state.running, and count its near pairs when the sweep has them. An off-diagonal tile
    serves both its rows and its columns.

    The near pairs share the k-NN's candidate pass and exact values unless they make the
    tile dense (copies, a collapsed batch): _near_tile then decides them from the tile
    without an exact value per pair."""
    both = rows != columns
    offset = np.array([[rows.start], [columns.start]])
    first = [_first_pairs(tile, state.largest(rows), state.k)]
    if both:
        first.append(_first_pairs(tile.T, state.largest(columns), state.k)[::-1])
    first = np.unique(np.ravel_multi_index(np.concatenate(first, axis=1), tile.shape))
    if first.size:  # flat indices, each pair once
        _fold_pairs(points, state, np.stack(np.divmod(first, tile.shape[1])) + offset, both)
    joint = state.near is not None
    hits = _knn_flags(tile, points, state, rows, columns, joint)
    if joint and _dense(hits):
        _near_tile(tile, points, state, rows, columns)
        joint, hits = False, _knn_flags(tile, points, state, rows, columns)
    if not joint:
        hits.ravel()[first] = False  # each pair is merged once
        if _dense(hits):
            tile = filter_tile(points, points, rows, columns, np.float64, state.scratch)
            hits &= _knn_flags(tile, points, state, rows, columns)
    candidates = np.flatnonzero(hits)
    pairs = np.stack(np.divmod(candidates, tile.shape[1])) + offset
    values = exact_squared_distances(points.exact, points.exact, pairs[0], pairs[1])
    if joint:  # first pairs too: a near pair is counted whatever its rank
        _count_near(state, pairs, values, rows, columns)
        merged = ~np.isin(candidates, first, assume_unique=True)  # each pair merged once
        pairs, values = pairs[:, merged], values[merged]
    _merge_pairs(state, pairs, values, both)


def _count_near(
    state: _SweepState, pairs: np.ndarray, values: np.ndarray, rows: slice, columns: slice
) -> None:
    """Count the pairs (point indices [2, p], exact squared distances values [p]) of one
    tile (rows <= columns) within state.near.limit and mark both points of each; a diagonal
    tile counts only its pairs i < j."""
    near = values <= state.near.limit
    if rows == columns:
        near &= pairs[0] < pairs[1]
    found = int(np.count_nonzero(near))
    if found == 0:
        return
    with state.lock:
        state.near.pairs += found
        state.near.has_partner[pairs[0, near]] = True
        state.near.has_partner[pairs[1, near]] = True


def _near_flags(
    tile: np.ndarray, points: FilterPoints, state: _SweepState, rows: slice, columns: slice
) -> tuple[np.ndarray, np.ndarray] | None:
    """(inside, unsure) bool [n, m] in scratch for the pairs of one tile (float32 or float64):
    inside: exact squared distance <= state.near.limit for certain; unsure: within the filter
    error of it; None when no pair can be within the limit (most tiles). A diagonal tile
    keeps only the pairs above its diagonal (i < j)."""
    dtype = tile.dtype.type
    scaled = points.scale_squared * state.near.limit  # a power of four: exact
    error = state.errors[dtype][rows, None]
    unsure = state.scratch.get(f"near {tile.dtype.name}", tile.shape, np.bool_)
    np.less_equal(tile, _near_limits(points, state, rows, dtype)[:, None], out=unsure)
    if rows == columns:
        unsure[np.tril_indices(tile.shape[0], 0, tile.shape[1])] = False
    if not unsure.any():
        return None
    inside = state.scratch.get(f"inside {tile.dtype.name}", tile.shape, np.bool_)
    np.less_equal(tile, at_most(scaled - error, dtype), out=inside)
    inside &= unsure
    unsure ^= inside
    return inside, unsure


def _near_tile(
    tile: np.ndarray, points: FilterPoints, state: _SweepState, rows: slice, columns: slice
) -> None:
    """Count the pairs of one tile (rows <= columns) within state.near.limit and mark both
    points of each. Pairs within the filter error of the limit are decided exactly."""
    flags = _near_flags(tile, points, state, rows, columns)
    if flags is not None and _dense(flags[1]):
        tile = filter_tile(points, points, rows, columns, np.float64, state.scratch)
        flags = _near_flags(tile, points, state, rows, columns)
    if flags is None:
        return
    inside, unsure = flags
    candidates = np.flatnonzero(unsure)
    row_index, column_index = np.divmod(candidates, tile.shape[1])
    values = exact_squared_distances(
        points.exact, points.exact, row_index + rows.start, column_index + columns.start
    )
    inside.ravel()[candidates[values <= state.near.limit]] = True
    found = int(np.count_nonzero(inside))
    if found == 0:
        return
    with state.lock:
        state.near.pairs += found
        state.near.has_partner[rows] |= inside.any(axis=1)
        state.near.has_partner[columns] |= inside.any(axis=0)


def _sweep_tile(points: FilterPoints, state: _SweepState, rows: slice, columns: slice) -> None:
    """The float32 tile of rows x columns (rows <= columns), for the near pairs and the k-NN."""
    tile = filter_tile(points, points, rows, columns, np.float32, state.scratch)
    if state.running is not None:  # the near pairs too, in the same candidate pass
        _knn_tile(tile, points, state, rows, columns)
    else:
        _near_tile(tile, points, state, rows, columns)


def neighbour_sweep(
    features: np.ndarray,
    k: int | None,
    near_limit: float | None = None,
    block_size: int = FILTER_BLOCK_SIZE,
    workers: int | None = None,
) -> tuple[np.ndarray | None, NearPairs | None]:
    """(k + 1 smallest squared distances, near pairs) of features float64 [N, d] in one pass.

    k: None for no k-NN, else N > k; the first result is then float64 [N, k + 1], sorted
    ascending, as nearest_neighbour_squared_distances. near_limit: None for no near pairs,
    else a squared distance >= 0; the second result counts the pairs i < j with
    sum((x_i - x_j)^2) <= near_limit (exact duplicates included).
    """
    points = filter_points(features, *centre_and_scale(features))
    largest_norm = points.norms.max(initial=0.0)
    errors = {
        dtype: filter_error(features.shape[1], points.norms, largest_norm, dtype)
        for dtype in (np.float32, np.float64)
    }
    n_points = features.shape[0]
    running = None if k is None else np.full((n_points, k + 1), np.inf)
    near = None
    if near_limit is not None:
        near = NearPairs(float(near_limit), 0, np.zeros(n_points, dtype=bool))
    state = _SweepState(running, k or 0, near, errors)
    blocks = list(block_ranges(n_points, block_size))
    diagonal = [(rows, rows) for rows in blocks]  # first: they make every row's bound finite
    above = [(rows, columns) for i, rows in enumerate(blocks) for columns in blocks[i + 1 :]]
    tasks = [(points, state, rows, columns) for rows, columns in diagonal + above]
    run_tiles(_sweep_tile, tasks, default_workers() if workers is None else workers)
    return (None if running is None else np.sort(running, axis=1)), near


def nearest_neighbour_squared_distances(
    features: np.ndarray,
    k: int,
    block_size: int = FILTER_BLOCK_SIZE,
    workers: int | None = None,
) -> np.ndarray:
    """The k + 1 smallest squared distances of each row to all rows, itself included.

    features: float64 [N, d], N > k. Returns float64 [N, k + 1], sorted ascending; column 0 is
    the point itself (0) and column k the squared distance to its k-th nearest neighbour,
    exact duplicates counting as neighbours at 0 (prdc's get_kth_value(..., k + 1)). Values
    are sum((u - v)^2) in float64, whatever block_size and workers (default_workers()).
    """
    return neighbour_sweep(features, k, None, block_size, workers)[0]
