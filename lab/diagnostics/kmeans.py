"""K-means, the one home of it: NDB's bins (ndb.py) and the discovered modes of an uploaded
reference (clusters.py) both cluster with these functions.

Lloyd's algorithm from a k-means++ start (Arthur & Vassilvitskii 2007); every distance goes
through tiles of blocks.py, so memory is O(N d + K d) however many points there are.
Deterministic for a seed.

Each assignment pass labels the points through assignment.nearest_labels, which gives the
labels of a blocks.nearest_centres pass bit for bit at a fraction of its cost, so the
centres, which follow from the labels alone, are those of plain Lloyd passes too.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .assignment import LabelledPoints, nearest_labels
from .blocks import default_workers, nearest_centres, squared_norms, tile_pool

MAX_ITERATIONS = 100


@dataclass(frozen=True, eq=False)
class KMeansFit:
    """centres float64 [K, d]; labels int64 [N], each point's nearest centre; inertia: the sum
    of squared distances of the points to their nearest centre (float, squared units)."""

    centres: np.ndarray
    labels: np.ndarray
    inertia: float


def kmeans_plus_plus(points: np.ndarray, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Initial centres float64 [K, d] (Arthur & Vassilvitskii 2007): each next centre is a
    point drawn with probability proportional to its squared distance to the nearest centre.

    A pass against one centre is many tiles of one column: handing them to threads costs more
    than they take, so they run in turn (the same tiles, the same values).
    """
    chosen = [int(rng.integers(points.shape[0]))]
    norms = squared_norms(points)
    closest = nearest_centres(points, points[chosen], point_norms=norms, workers=1)[1]
    for _ in range(1, n_bins):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than bins: repeat one
            chosen.append(chosen[-1])
            continue
        chosen.append(int(rng.choice(points.shape[0], p=closest / total)))
        newest = nearest_centres(points, points[chosen[-1:]], point_norms=norms, workers=1)[1]
        closest = np.minimum(closest, newest)
    return points[chosen].copy()


def kmeans(points: np.ndarray, n_bins: int, seed: int = 0) -> np.ndarray:
    """Lloyd's K-means from a k-means++ start; deterministic for a seed. -> centres [K, d].

    points: float64 [N, d]. Stops when no assignment changes or after 100 iterations; an
    empty bin keeps its previous centre.
    """
    return kmeans_fit(points, n_bins, seed).centres


def kmeans_fit(points: np.ndarray, n_bins: int, seed: int = 0) -> KMeansFit:
    """kmeans' centres with the labels and inertia of the points at them (a last
    nearest_centres pass: the assignment passes give labels only)."""
    with tile_pool(default_workers()) as pool:  # one pool for the 101 passes, BLAS at 1 thread
        centres = kmeans_plus_plus(points, n_bins, np.random.default_rng(seed))
        centres = lloyd(points, centres, pool)
        labels, squared = nearest_centres(points, centres, pool=pool)
    return KMeansFit(centres, labels, float(squared.sum()))


def lloyd(
    points: np.ndarray, centres: np.ndarray, pool: ThreadPoolExecutor | None = None
) -> np.ndarray:
    """Lloyd's iterations on points float64 [N, d] from centres float64 [K, d] (updated in
    place and returned): stop when an assignment pass changes no label, or after
    MAX_ITERATIONS centre updates. An empty bin keeps its previous centre. pool: a
    blocks.tile_pool for the passes."""
    labelled = LabelledPoints.prepare(points)
    columns = np.ascontiguousarray(points.T)  # [d, N]: one contiguous row per coordinate
    n_bins = centres.shape[0]
    assignment = np.full(points.shape[0], -1)
    for iteration in range(MAX_ITERATIONS):  # the previous labels are the guesses to test
        updated = nearest_labels(labelled, centres, assignment if iteration else None, pool)
        if np.array_equal(updated, assignment):
            break
        assignment = updated
        counts = np.bincount(assignment, minlength=n_bins)
        sums = cluster_sums(columns, assignment, n_bins)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def cluster_sums(columns: np.ndarray, labels: np.ndarray, n_bins: int) -> np.ndarray:
    """Per-cluster coordinate sums float64 [K, d] of points given as columns [d, N].

    bincount adds each cluster's rows in row order, as np.add.at does (the same bits), and
    one contiguous coordinate at a time is 15x faster than np.add.at on [N, d] rows.
    """
    return np.stack([np.bincount(labels, weights=row, minlength=n_bins) for row in columns], 1)


def best_kmeans(points: np.ndarray, n_clusters: int, seed: int, n_init: int) -> KMeansFit:
    """The lowest-inertia of n_init kmeans runs (seeds drawn from `seed`), as scikit-learn's
    n_init does: one k-means++ start can put two centres in one cluster and one across two.

    points: float64 [N, d] with N >= n_clusters.
    """
    seeds = np.random.default_rng(seed).integers(2**31, size=n_init)
    best = None
    for run_seed in seeds:
        fit = kmeans_fit(points, n_clusters, int(run_seed))
        if best is None or fit.inertia < best.inertia:
            best = fit
    return best
