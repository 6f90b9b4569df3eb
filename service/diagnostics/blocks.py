"""Blocked pairwise squared Euclidean distances: the one home of |u|^2 - 2 u.v + |v|^2.

Every metric that compares two point sets (k-NN radii, precision/recall/density/coverage,
near duplicates, NDB bin assignment) walks the [N, M] distance matrix in tiles of at most
block_size x block_size, so memory is O((N + M) d + block_size^2) however large N and M are.

The arithmetic is the one scikit-learn's `euclidean_distances` uses for float64 input (and so
the `prdc` package): fl(fl(-2 u.v + |u|^2) + |v|^2) with |u|^2 from einsum. The factor -2 is
folded into v before the matrix product, which is exact (a power-of-two scaling). Values agree
with scikit-learn to a few ulps (the matrix product rounds differently for different tile
shapes, in scikit-learn too), so a comparison with a radius decides as `prdc` does except at a
tie within a few ulps.

The expansion cancels for (near-)identical points: |u - u|^2 comes out as +-1e-16 |u|^2
instead of 0 (scikit-learn clamps the negative ones at 0 and zeroes only the diagonal).
Entries within the rounding bound of 0 are therefore recomputed directly as sum((u - v)^2):
identical rows are at distance exactly 0, every entry is >= 0, and no clamp is needed.
"""

from collections.abc import Iterator

import numpy as np

DEFAULT_BLOCK_SIZE = 2048  # 2048 x 2048 float64 tile = 32 MiB
_EPSILON = float(np.finfo(np.float64).eps)


def squared_norms(points: np.ndarray) -> np.ndarray:
    """|u|^2 of each row of points float64 [N, d] -> float64 [N] (einsum, as scikit-learn)."""
    return np.einsum("nd,nd->n", points, points)


def block_ranges(size: int, block_size: int) -> Iterator[slice]:
    """Consecutive slices covering range(size), each at most block_size long."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    for start in range(0, size, block_size):
        yield slice(start, min(start + block_size, size))


def rounding_bound(dim: int, row_norms: np.ndarray, column_norms: np.ndarray) -> float:
    """An upper bound on |computed - exact| squared distance for any entry of one tile.

    Dot products of length d err by at most gamma_d |u| |v| <= gamma_d (|u|^2 + |v|^2) / 2
    (gamma_d = d eps / (1 - d eps), Higham, Accuracy and Stability, eq. 3.5), the norms by
    gamma_d |u|^2 each, the two additions by eps each: 2 (d + 2) eps (|u|^2 + |v|^2) covers it.
    """
    largest = float(row_norms.max(initial=0.0)) + float(column_norms.max(initial=0.0))
    return 2.0 * (dim + 2) * _EPSILON * largest


def _recompute_near_zero(
    tile: np.ndarray, rows: np.ndarray, columns: np.ndarray, bound: float
) -> None:
    """Replace, in place, the entries of tile that are <= bound by sum((u - v)^2)."""
    if not tile.size or tile.min() > bound:
        return
    candidate_rows = np.flatnonzero(tile.min(axis=1) <= bound)
    row_index, column_index = np.nonzero(tile[candidate_rows] <= bound)
    row_index = candidate_rows[row_index]
    difference = rows[row_index] - columns[column_index]
    tile[row_index, column_index] = np.einsum("nd,nd->n", difference, difference)


def tile_buffer(block_size: int) -> np.ndarray:
    """Scratch memory for squared_distances: float64 [block_size^2] (reused, no page faults)."""
    return np.empty(block_size * block_size)


def squared_distances(
    rows: np.ndarray,
    columns: np.ndarray,
    row_norms: np.ndarray,
    column_norms: np.ndarray,
    buffer: np.ndarray | None = None,
) -> np.ndarray:
    """Squared Euclidean distances of one tile: float64 [n, m], entry (i, j) = |u_i - v_j|^2 >= 0.

    rows: float64 [n, d]; columns: float64 [m, d]; row_norms [n], column_norms [m]: their
    squared_norms. Entries near 0 are exact (see the module docstring). buffer: optional
    float64 [>= n m] from tile_buffer; the tile is then a view of it, overwritten by the next
    call (reusing it saves a fresh 32 MiB allocation and its page faults per tile).
    """
    shape = (rows.shape[0], columns.shape[0])
    out = None if buffer is None else buffer[: shape[0] * shape[1]].reshape(shape)
    # (-2 v) makes the product equal -2 (u.v) bit for bit: power-of-two scaling is exact
    tile = np.matmul(rows, (-2.0 * columns).T, out=out)
    tile += row_norms[:, None]
    tile += column_norms[None, :]
    bound = rounding_bound(rows.shape[1], row_norms, column_norms)
    _recompute_near_zero(tile, rows, columns, bound)
    return tile


def tiles(
    rows: np.ndarray, columns: np.ndarray, block_size: int
) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Walk the squared-distance matrix of rows float64 [N, d] x columns float64 [M, d].

    Yields (row_slice, column_slice, tile float64 [<= block_size, <= block_size]) row block by
    row block, column blocks in order within each. The tile is a fresh array the caller may
    modify until the next one: all tiles share one buffer. Norms are computed once.
    """
    row_norms, column_norms = squared_norms(rows), squared_norms(columns)
    buffer = tile_buffer(block_size)
    for row_slice in block_ranges(rows.shape[0], block_size):
        for column_slice in block_ranges(columns.shape[0], block_size):
            tile = squared_distances(
                rows[row_slice],
                columns[column_slice],
                row_norms[row_slice],
                column_norms[column_slice],
                buffer,
            )
            yield row_slice, column_slice, tile
