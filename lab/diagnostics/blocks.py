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

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

try:  # optional: without it BLAS keeps its own thread count
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

DEFAULT_BLOCK_SIZE = 2048  # 2048 x 2048 float64 tile = 32 MiB
FILTER_BLOCK_SIZE = 1024  # float32 filter tiles: 4 MiB + 2 x 1 MiB of flags fit in cache
MAX_WORKERS = 4  # a small fixed pool: tiles are memory-bandwidth bound beyond a few cores
_EPSILON = float(np.finfo(np.float64).eps)


def blas_single_threaded() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread for the duration (a no-op without threadpoolctl)."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


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


class Scratch(threading.local):
    """Reusable per-thread arrays (a fresh tile per call would page-fault every time)."""

    def get(self, name: str, shape: tuple[int, int], dtype: type) -> np.ndarray:
        """An uninitialised array of this shape and dtype, the same memory on each call."""
        arrays = self.__dict__.setdefault("arrays", {})
        size = shape[0] * shape[1]
        if name not in arrays or arrays[name].size < size:
            arrays[name] = np.empty(size, dtype)
        return arrays[name][:size].reshape(shape)


# Filter tiles. Most pairs are far from every decision threshold, so their squared distance
# is only needed to within a bound: float32 tiles (about twice as fast as float64) find the
# few candidate pairs, and those are recomputed exactly. Where float32 cannot resolve the
# points (a tight cluster), a float64 tile narrows the candidates first.
@dataclass(eq=False)
class FilterPoints:
    """Points prepared for filter tiles (see filter_points).

    exact: float64 [N, d], the points as given (exact recomputation uses these).
    shifted: float64 [N, d], x = s (exact - centre), s^2 = scale_squared (a power of four).
    norms: float64 [N], |x|^2.
    as_rows(dtype), as_columns(dtype): [N, d + 2] arrays with
    as_rows(dtype)[i] . as_columns(dtype)[j] = scale_squared |x_i - x_j|^2 up to rounding
    (filter_error), each built on first use and kept (most sweeps never need float64 tiles;
    a K-means pass needs only the columns).
    """

    exact: np.ndarray
    shifted: np.ndarray
    norms: np.ndarray
    scale_squared: float
    _built: dict[tuple[str, type], np.ndarray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_rows(self, dtype: type) -> np.ndarray:
        """[x, |x|^2, 1] of dtype, [N, d + 2]."""
        return self._get("rows", dtype)

    def as_columns(self, dtype: type) -> np.ndarray:
        """[-2 x, 1, |x|^2] of dtype, [N, d + 2]."""
        return self._get("columns", dtype)

    def _get(self, side: str, dtype: type) -> np.ndarray:
        """The array of this side and dtype, built once (threads of a sweep share it)."""
        with self._lock:
            if (side, dtype) not in self._built:
                if side == "rows":
                    built = _augmented(self.shifted, 1.0, self.norms, 1.0, dtype)
                else:
                    built = _augmented(self.shifted, -2.0, 1.0, self.norms, dtype)
                self._built[side, dtype] = built
            return self._built[side, dtype]


def centre_and_scale(*point_sets: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre float64 [d], scale_squared) for filter_points of all these sets together.

    point_sets: float64 [N, d] each. The centre is their mean: distances do not change, and
    the filter error, which grows with |x - centre|^2, shrinks to the spread of the points
    (a collapsed cluster far from the origin is resolved). scale_squared is a power of four
    with scale_squared max |x - centre|^2 <= 1 (exact scaling that keeps float32 away from
    overflow and from the subnormal range, where the relative error bound would fail).
    """
    total = sum(points.shape[0] for points in point_sets)
    centre = sum(points.sum(axis=0) for points in point_sets) / max(total, 1)
    largest = max(float(squared_norms(points - centre).max(initial=0.0)) for points in point_sets)
    if not 0.0 < largest < np.inf:
        return centre, 1.0
    exponent = int(np.frexp(largest)[1])  # largest = f 2^exponent, f in [0.5, 1)
    return centre, float(np.ldexp(1.0, -2 * ((exponent + 1) // 2)))


def filter_points(points: np.ndarray, centre: np.ndarray, scale_squared: float) -> FilterPoints:
    """Points for filter tiles: x = s (points - centre), whose augmented copies [x, |x|^2, 1]
    and [-2 x, 1, |x|^2] (FilterPoints.as_rows, as_columns) give s^2 (|u|^2 - 2 u.v + |v|^2)
    in one matrix product with no passes to add the norms. points: float64 [N, d]; centre,
    scale_squared from centre_and_scale.
    """
    shifted = (points - centre) * np.sqrt(scale_squared)  # scale: exact power of two
    return FilterPoints(points, shifted, squared_norms(shifted), scale_squared)


def _augmented(points: np.ndarray, factor: float, second_last, last, dtype: type) -> np.ndarray:
    """[factor * points, second_last, last] of dtype, [N, d + 2], written in place (no
    float64 copy to convert): factor 1 or -2 (exact); second_last and last are float64 [N]
    columns or scalars."""
    out = np.empty((points.shape[0], points.shape[1] + 2), dtype)
    np.multiply(points, factor, out=out[:, :-2])  # rounded once, to dtype
    out[:, -2], out[:, -1] = second_last, last
    return out


def filter_error(dim: int, norms: np.ndarray, other_largest: float, dtype: type) -> np.ndarray:
    """Bound on |filter tile entry - exact scaled squared distance| per point: float64 [n].

    norms: float64 [n], scaled |u|^2 of the points; other_largest: the largest scaled |v|^2
    they are compared with; dtype: the tile's, float32 or float64, with unit roundoff u. The
    entry is a dot product of d + 2 terms whose absolute values sum to
    2 |u.v|_abs + |u|^2 + |v|^2 <= 2 (|u|^2 + |v|^2). Higham (Accuracy and Stability,
    eq. 3.5): |fl(x.y) - x.y| <= gamma_n |x|.|y|, gamma_n = n u / (1 - n u), for any
    summation order; so the product errs by at most 2 gamma_{d+2} (|u|^2 + |v|^2). Rounding
    the inputs adds at most 3 u (|u|^2 + |v|^2) (2 u for the -2 u.v terms, u for each norm).
    The factor 2 covers centring, the float64 norms and the exact recomputation (each at
    most ~1e-9 of the float32 bound and a small fraction of the float64 one); the absolute
    term covers underflow (scaled |v|^2 <= 1, so products below the smallest normal matter
    little).
    """
    unit, tiny = float(np.finfo(dtype).eps) / 2.0, float(np.finfo(dtype).tiny)
    terms = dim + 2
    gamma = terms * unit / (1.0 - terms * unit)
    relative = 2.0 * (2.0 * gamma + 3.0 * unit)
    return relative * (norms + other_largest) + 4.0 * terms * tiny


def at_least(values: np.ndarray, dtype: type) -> np.ndarray:
    """The smallest number of dtype >= each float64 value, one more step up for float64 (the
    addition that formed the value rounded): x <= value implies x <= result for x of dtype."""
    if dtype is np.float64:
        return np.nextafter(values, np.inf)
    rounded = values.astype(dtype)
    return np.where(rounded < values, np.nextafter(rounded, dtype(np.inf)), rounded)


def at_most(values: np.ndarray, dtype: type) -> np.ndarray:
    """The largest number of dtype <= each float64 value, one more step down for float64 (the
    subtraction that formed the value rounded): x <= result implies x <= value for x of dtype."""
    if dtype is np.float64:
        return np.nextafter(values, -np.inf)
    rounded = values.astype(dtype)
    return np.where(rounded > values, np.nextafter(rounded, dtype(-np.inf)), rounded)


def filter_tile(
    row_points: FilterPoints,
    column_points: FilterPoints,
    rows: slice,
    columns: slice,
    dtype: type,
    scratch: Scratch,
) -> np.ndarray:
    """Scaled squared distances of rows x columns in dtype, [n, m], in scratch memory."""
    shape = (rows.stop - rows.start, columns.stop - columns.start)
    out = scratch.get(f"tile {np.dtype(dtype).name}", shape, dtype)
    row_part = row_points.as_rows(dtype)[rows]
    return np.matmul(row_part, column_points.as_columns(dtype)[columns].T, out=out)


def exact_squared_distances(
    rows: np.ndarray, columns: np.ndarray, row_index: np.ndarray, column_index: np.ndarray
) -> np.ndarray:
    """sum((rows[i] - columns[j])^2) for each pair (row_index, column_index): float64 [p].

    rows: float64 [N, d], columns: float64 [M, d]. No cancellation: duplicates give exactly
    0, and a pair's value does not depend on the tiling. Chunks of at most 2^22 numbers.
    """
    values = np.empty(row_index.size)
    chunk = max(1, 2**22 // max(rows.shape[1], 1))
    for start in range(0, row_index.size, chunk):
        pairs = slice(start, start + chunk)
        difference = rows[row_index[pairs]] - columns[column_index[pairs]]
        values[pairs] = np.einsum("nd,nd->n", difference, difference)
    return values


def default_workers() -> int:
    """Threads for tile sweeps: the usable CPUs, at most MAX_WORKERS."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, available))


@contextlib.contextmanager
def tile_pool(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of `workers` threads for run_tiles, BLAS at one thread meanwhile (None, BLAS as
    it is, for one worker). Starting both costs about a millisecond: a caller making hundreds
    of short sweeps (K-means) keeps one pool for all of them."""
    if workers <= 1:
        yield None
        return
    with blas_single_threaded(), ThreadPoolExecutor(workers) as pool:
        yield pool


def run_tiles(
    task: Callable[..., None],
    arguments: list[tuple],
    workers: int,
    pool: ThreadPoolExecutor | None = None,
) -> None:
    """task(*each) for each of arguments, on `workers` threads (in order when workers == 1),
    or on pool (from tile_pool; workers is then ignored).

    numpy releases the GIL in matrix products, comparisons and nonzero, so tiles overlap.
    BLAS is limited to one thread meanwhile (two levels of threads would oversubscribe).
    """
    if pool is None and workers > 1:
        with tile_pool(workers) as pool:
            run_tiles(task, arguments, workers, pool)
        return
    if pool is None:
        for each in arguments:
            task(*each)
        return
    for future in [pool.submit(task, *each) for each in arguments]:
        future.result()


def nearest_in_block(
    points: np.ndarray,
    centres: np.ndarray,
    rows: slice,
    point_norms: np.ndarray,
    centre_norms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(index int64 [n], squared distance float64 [n]) of the nearest centre of points[rows]:
    one tile of nearest_centres, the same values whenever it is computed (K-means recomputes
    single tiles of a pass). point_norms [N], centre_norms [K]: squared_norms of both."""
    tile = squared_distances(points[rows], centres, point_norms[rows], centre_norms)
    index = np.argmin(tile, axis=1)
    return index, tile[np.arange(tile.shape[0]), index]


def nearest_centres(
    points: np.ndarray,
    centres: np.ndarray,
    block_size: int = DEFAULT_BLOCK_SIZE,
    point_norms: np.ndarray | None = None,
    workers: int | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(index int64 [N], squared distance float64 [N]) of each point's nearest centre.

    points: float64 [N, d]; centres: float64 [K, d]; K is small, so tiles are
    block_size x K (nearest_in_block). Ties go to the lower index (argmin). point_norms:
    squared_norms(points), when the caller has them (K-means asks for every iteration);
    workers: threads (default_workers()), or pool: a tile_pool the caller keeps. The tiles
    are the same whatever the threads, so are the results.
    """
    point_norms = squared_norms(points) if point_norms is None else point_norms
    centre_norms = squared_norms(centres)
    index = np.empty(points.shape[0], dtype=np.int64)
    distance = np.empty(points.shape[0])

    def nearest_in(rows: slice) -> None:
        index[rows], distance[rows] = nearest_in_block(
            points, centres, rows, point_norms, centre_norms
        )

    tasks = [(rows,) for rows in block_ranges(points.shape[0], block_size)]
    workers = default_workers() if workers is None else workers
    run_tiles(nearest_in, tasks, min(workers, len(tasks)), pool)  # one tile: no new pool
    return index, distance
