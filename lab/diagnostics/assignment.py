"""Nearest-centre labels bit for bit as blocks.nearest_centres gives them, at a fraction of
its cost: K-means makes a hundred such passes over the same points.

A float64 tile of nearest_centres lies within blocks.rounding_bound (B, squared units) of the
exact squared distances, so a row's label is settled wherever a cheaper computation proves
one centre nearer than every other by more than 2 B: that centre's entry is then the strict
minimum of the row in the tile (argmin picks it). Three stages, each deciding what it proves:

1. float32 filter tiles (blocks.filter_points: one matrix product, no passes adding norms),
   whose entries lie within blocks.filter_error (e) of the scaled exact values: a guessed
   label (K-means' previous one) is decided when every other entry of the point exceeds the
   guess's by more than 2 e + 2 s^2 B (s^2: the scale).
2. The few rows left get a float64 tile of their own (blocks.squared_distances, gathered
   rows): decided when its two smallest entries are more than 4 B apart.
3. The rest, ties within rounding (duplicate centres, a point halfway between two), take
   the argmin of the very tile nearest_centres computes for their block of rows.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .blocks import (
    DEFAULT_BLOCK_SIZE,
    FilterPoints,
    Scratch,
    at_least,
    block_ranges,
    centre_and_scale,
    default_workers,
    filter_error,
    filter_points,
    filter_tile,
    nearest_in_block,
    rounding_bound,
    run_tiles,
    squared_distances,
    squared_norms,
)

MARGIN_SLACK = 1e-9  # relative widening of the margins: covers the rounding of the tests
_SCRATCH = Scratch()  # float32 tiles, one per worker thread


@dataclass(frozen=True)
class LabelledPoints:
    """Points prepared once for many nearest_labels passes: points float64 [N, d], norms
    float64 [N] (their squared_norms), filtered (their float32 filter rows) and centre (the
    filter's centre, float64 [d]; the centres get the same shift and scale)."""

    points: np.ndarray
    norms: np.ndarray
    filtered: FilterPoints
    centre: np.ndarray

    @classmethod
    def prepare(cls, points: np.ndarray) -> "LabelledPoints":
        """points float64 [N, d]. Centres inside their convex hull (K-means' means and its
        k-means++ points) stay inside the filter's scaled unit ball. Only the float32
        columns [-2 x, 1, |x|^2] are used (tiles are centres x points)."""
        centre, scale_squared = centre_and_scale(points)
        filtered = filter_points(points, centre, scale_squared)
        return cls(points, squared_norms(points), filtered, centre)


def two_smallest(tile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(argmin int [n], smallest, second smallest float64 [n]) of each row of tile [n, K]
    (the second is inf for K = 1). Overwrites the smallest entries of tile with inf."""
    rows = np.arange(tile.shape[0])
    best = np.argmin(tile, axis=1)
    smallest = tile[rows, best].astype(np.float64)
    tile[rows, best] = np.inf
    return best, smallest, tile.min(axis=1).astype(np.float64)


def nearest_labels(
    labelled: LabelledPoints,
    centres: np.ndarray,
    guesses: np.ndarray | None = None,
    pool: ThreadPoolExecutor | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """nearest_centres(labelled.points, centres)[0], int64 [N], bit for bit (see the module).

    centres: float64 [K, d]; guesses: int [N], labels to test first (K-means passes the
    previous ones, most of which hold), default the float32 tiles' argmin; pool: a
    blocks.tile_pool (default: threads for this pass); block_size: points in a filter tile
    (any: the labels do not depend on it).
    """
    points, filtered = labelled.points, labelled.filtered
    centre_points = filter_points(centres, labelled.centre, filtered.scale_squared)
    centre_norms = squared_norms(centres)
    bound = rounding_bound(points.shape[1], labelled.norms, centre_norms)
    error = filter_error(
        points.shape[1], filtered.norms, centre_points.norms.max(initial=0.0), np.float32
    )
    margin = (2.0 * error + 2.0 * filtered.scale_squared * bound) * (1.0 + MARGIN_SLACK)
    labels, undecided = np.empty(points.shape[0], dtype=np.int64), []
    every_centre = slice(0, centres.shape[0])
    count_type = np.uint8 if centres.shape[0] < 256 else np.int64  # no wrap-around

    def filter_block(rows: slice) -> None:
        # [K, n]: the reductions over centres run along contiguous rows of points
        tile = filter_tile(centre_points, filtered, every_centre, rows, np.float32, _SCRATCH)
        guess = np.argmin(tile, axis=0) if guesses is None else guesses[rows]
        guessed = tile[guess, np.arange(tile.shape[1])].astype(np.float64)
        within = tile <= at_least(guessed + margin[rows], np.float32)[None, :]
        alone = np.add.reduce(within, axis=0, dtype=count_type) == 1  # only the guess
        labels[rows] = guess
        undecided.append(np.flatnonzero(~alone) + rows.start)

    tasks = [(rows,) for rows in block_ranges(points.shape[0], block_size)]
    run_tiles(filter_block, tasks, default_workers(), pool)
    undecided = np.concatenate(undecided)
    ties = relabel_exactly(labelled, centres, centre_norms, bound, labels, undecided)
    relabel_ties(labelled, centres, centre_norms, labels, ties)
    return labels


def relabel_exactly(
    labelled: LabelledPoints,
    centres: np.ndarray,
    centre_norms: np.ndarray,
    bound: float,
    labels: np.ndarray,
    indices: np.ndarray,
) -> np.ndarray:
    """Stage 2: label the points `indices` int [n] from a float64 tile of their own, in
    place in labels int64 [N] -> the indices of the ties, undecided there."""
    ties = [indices[:0]]
    for part in block_ranges(indices.size, DEFAULT_BLOCK_SIZE):
        chosen = indices[part]
        tile = squared_distances(
            labelled.points[chosen], centres, labelled.norms[chosen], centre_norms
        )
        best, smallest, second = two_smallest(tile)
        decided = second - smallest > 4.0 * bound * (1.0 + MARGIN_SLACK)
        labels[chosen[decided]] = best[decided]
        ties.append(chosen[~decided])
    return np.concatenate(ties)


def relabel_ties(
    labelled: LabelledPoints,
    centres: np.ndarray,
    centre_norms: np.ndarray,
    labels: np.ndarray,
    ties: np.ndarray,
) -> None:
    """Stage 3: label the points `ties` int [n] from the very tiles nearest_centres computes
    for them (blocks of DEFAULT_BLOCK_SIZE rows), in place in labels int64 [N]."""
    n_points = labelled.points.shape[0]
    for block in np.unique(ties // DEFAULT_BLOCK_SIZE):
        rows = slice(block * DEFAULT_BLOCK_SIZE, min((block + 1) * DEFAULT_BLOCK_SIZE, n_points))
        index = nearest_in_block(labelled.points, centres, rows, labelled.norms, centre_norms)[0]
        inside = ties[(ties >= rows.start) & (ties < rows.stop)]
        labels[inside] = index[inside - rows.start]
