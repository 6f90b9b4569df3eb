"""Blocked pairwise squared Euclidean distances: the one home of |u|^2 - 2 u.v + |v|^2.

Every metric that compares two point sets (k-NN radii, precision/recall/density/coverage,
near duplicates, NDB bin assignment, nearest mixture centres) walks the [N, M] distance matrix
in tiles of at most block_size x block_size, so memory is O((N + M) d + block_size^2) however
large N and M are.

The arithmetic is the one scikit-learn's `euclidean_distances` uses for float64 input (and so
the `prdc` package): fl(fl(-2 u.v + |u|^2) + |v|^2), then clamped at 0, with |u|^2 from
einsum. The factor -2 is folded into v before the matrix product; scaling by a power of two is
exact, so each tile equals scikit-learn's entries bit for bit, and a comparison with a radius
decides exactly as `prdc` does.
"""

from collections.abc import Iterator

import numpy as np

DEFAULT_BLOCK_SIZE = 2048  # 2048 x 2048 float64 tile = 32 MiB


def squared_norms(points: np.ndarray) -> np.ndarray:
    """|u|^2 of each row of points float64 [N, d] -> float64 [N] (einsum, as scikit-learn)."""
    return np.einsum("nd,nd->n", points, points)


def block_ranges(size: int, block_size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive blocks covering range(size), each at most block_size long."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    for start in range(0, size, block_size):
        yield start, min(start + block_size, size)


def squared_distances(
    rows: np.ndarray,
    columns: np.ndarray,
    row_norms: np.ndarray,
    column_norms: np.ndarray,
    clamp: bool = True,
) -> np.ndarray:
    """Squared Euclidean distances of one tile: float64 [n, m], entry (i, j) = |u_i - v_j|^2.

    rows: float64 [n, d]; columns: float64 [m, d]; row_norms [n], column_norms [m]: their
    squared_norms. The expansion can round slightly below 0 for (near-)identical points;
    clamp=True clamps at 0. clamp=False skips that pass for callers that only compare with a
    threshold >= 0 or select order statistics (both commute with the clamp).
    """
    tile = rows @ (-2.0 * columns).T  # == -2 (u.v) bit for bit: power-of-two scaling is exact
    tile += row_norms[:, None]
    tile += column_norms[None, :]
    if clamp:
        np.maximum(tile, 0.0, out=tile)
    return tile


def tiles(
    rows: np.ndarray, columns: np.ndarray, block_size: int, clamp: bool = True
) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Walk the squared-distance matrix of rows float64 [N, d] x columns float64 [M, d].

    Yields (row_slice, column_slice, tile float64 [<= block_size, <= block_size]) row block by
    row block, column blocks in order within each. The tile is a fresh array the caller may
    modify. Norms are computed once.
    """
    row_norms, column_norms = squared_norms(rows), squared_norms(columns)
    for row_start, row_stop in block_ranges(rows.shape[0], block_size):
        row_slice = slice(row_start, row_stop)
        for column_start, column_stop in block_ranges(columns.shape[0], block_size):
            column_slice = slice(column_start, column_stop)
            tile = squared_distances(
                rows[row_slice],
                columns[column_slice],
                row_norms[row_slice],
                column_norms[column_slice],
                clamp,
            )
            yield row_slice, column_slice, tile
