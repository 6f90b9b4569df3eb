"""Modes of any reference: discovered by clustering an uploaded batch of real samples.

A reference of real data (any embedding) has no built-in modes; here its features are
clustered once, when the reference is created, and the clusters then play the part of a
mixture's centres in the papers' protocol (mixture.py):

- the rows are split, with a fixed seed, into a fit part (80%) and a held-out part (20%);
- K-means (kmeans.py: k-means++ start, the best of several seeded runs) on the fit rows; K is
  the user's, or the one of K = 2..30 with the largest mean silhouette (Rousseeuw 1987) on a
  seeded subsample of at most 2,000 fit rows;
- modes are numbered by decreasing share of the reference rows (mode 0 is the largest);
- a sample is *high quality* when it lies within its nearest centre's radius, the 99%
  quantile of that cluster's fit rows' distances to their centre (a mixture's "within 3 std"
  keeps 98.9% of exact draws in 2-D, the same idea for clusters of any shape and size);
- calibration: the held-out rows, which did not place the centres, give each mode's chance
  that a real row is high quality (shrunk towards the pooled rate with 10 pseudo-rows, so a
  small cluster's few held-out rows do not make it noisy); success_k = share_k x rate_k is
  what statistics.histogram_stats needs for an exact sampler's expected coverage;
- exemplars: the reference rows nearest each centre, so a missing mode can be shown.

Numpy only; distances go through blocks.py, so memory stays O(N d + K d) apart from the
silhouette subsample's [S, S] distance matrix (S <= 2,000: 32 MB).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from .blocks import DEFAULT_BLOCK_SIZE, blas_single_threaded, tiles
from .errors import DiagnosticsError
from .kmeans import best_kmeans
from .mixture import nearest_modes
from .statistics import ModeStats, histogram_stats


@dataclass(frozen=True)
class ClusterConfig:
    """How modes are discovered (the defaults every caller uses; docs/diagnostics.md)."""

    seed: int = 0
    held_out_fraction: float = 0.2
    n_init: int = 4  # k-means runs per K; the lowest inertia wins
    auto_max_modes: int = 30  # the silhouette rule tries K = 2..30
    max_modes: int = 100  # the largest K a user may ask for
    min_rows_per_mode: int = 10  # fit rows needed per mode (and per tried K)
    silhouette_rows: int = 2_000  # subsample for the silhouette rule ([S, S] distances)
    max_fit_rows: int = 20_000  # the final K-means sees at most this many fit rows
    radius_quantile: float = 0.99
    shrinkage_rows: float = 10.0  # pseudo-rows pulling each mode's rate to the pooled one
    exemplars: int = 4  # reference rows kept per mode


CONFIG = ClusterConfig()


@dataclass(frozen=True, eq=False)
class ClusterModes:
    """Discovered modes of a reference of N rows in D feature dimensions, K modes.

    centres float64 [K, D] (feature space); radii float64 [K] (feature units: the high-quality
    radius of each mode); weights float64 [K] (shares of the N reference rows, summing to 1);
    success float64 [K] (chance one real row is a high-quality hit on each mode);
    exemplar_rows int64 [K, E] (reference rows nearest each centre, nearest first, -1 where a
    mode has fewer than E rows).
    """

    centres: np.ndarray
    radii: np.ndarray
    weights: np.ndarray
    success: np.ndarray
    exemplar_rows: np.ndarray

    @property
    def n_modes(self) -> int:
        return int(self.centres.shape[0])

    def exemplars_of(self, mode: int) -> list[int]:
        """The reference rows nearest the centre of `mode`, nearest first."""
        return [int(row) for row in self.exemplar_rows[mode] if row >= 0]


def split_rows(n_rows: int, config: ClusterConfig = CONFIG) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows), int64 index arrays, sorted, from a seeded permutation."""
    order = np.random.default_rng(config.seed).permutation(n_rows)
    n_held_out = int(round(config.held_out_fraction * n_rows))
    return np.sort(order[n_held_out:]), np.sort(order[:n_held_out])


def largest_modes(n_rows: int, config: ClusterConfig = CONFIG) -> int:
    """The largest K that n_rows reference rows support: min_rows_per_mode fit rows per mode,
    and at most max_modes (0 or 1: too few rows to discover modes)."""
    n_fit = n_rows - int(round(config.held_out_fraction * n_rows))
    return min(config.max_modes, n_fit // config.min_rows_per_mode)


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """Euclidean distances float64 [S, S] of points float64 [S, d], through blocks.tiles."""
    distances = np.empty((points.shape[0], points.shape[0]))
    for rows, columns, tile in tiles(points, points, 2048):
        distances[rows, columns] = np.sqrt(tile)
    return distances


def silhouette(distances: np.ndarray, labels: np.ndarray, n_clusters: int) -> float:
    """Mean silhouette (Rousseeuw 1987) of a labelling: s_i = (b_i - a_i) / max(a_i, b_i),
    a_i the mean distance to the rest of its own cluster, b_i the smallest mean distance to
    another cluster; 0 for a point alone in its cluster. distances [S, S], labels int [S]."""
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    sums = distances @ np.eye(n_clusters)[labels]  # [S, K]: distance sums to each cluster
    rows = np.arange(labels.size)
    own = counts[labels]
    a = sums[rows, labels] / np.maximum(own - 1.0, 1.0)
    means = sums / np.where(counts > 0, counts, np.inf)
    means[rows, labels] = np.inf
    means[:, counts == 0] = np.inf
    b = means.min(axis=1)
    spread = np.maximum(a, b)
    score = np.where((own > 1) & (spread > 0), (b - a) / np.where(spread > 0, spread, 1.0), 0.0)
    return float(score.mean())


def choose_modes(points: np.ndarray, config: ClusterConfig = CONFIG) -> tuple[int, dict]:
    """(K, {K: mean silhouette}) of the silhouette rule on fit rows points float64 [n, d]:
    K-means on a seeded subsample of at most silhouette_rows rows for each K = 2..K_max
    (K_max: auto_max_modes, and min_rows_per_mode rows per mode); the best silhouette wins,
    the smaller K on a tie. DiagnosticsError when no K gives clusters of >= 2 rows."""
    rng = np.random.default_rng(config.seed + 1)
    if points.shape[0] > config.silhouette_rows:
        points = points[np.sort(rng.choice(points.shape[0], config.silhouette_rows, False))]
    distances = pairwise_distances(points)
    top = min(config.auto_max_modes, points.shape[0] // config.min_rows_per_mode)
    scores = {}
    for n_clusters in range(2, top + 1):
        fit = best_kmeans(points, n_clusters, config.seed + n_clusters, config.n_init)
        if np.bincount(fit.labels, minlength=n_clusters).min() >= 2:
            scores[n_clusters] = silhouette(distances, fit.labels, n_clusters)
    if not scores:
        raise DiagnosticsError(
            "no clustering of the reference into 2 or more modes of >= 2 rows each: "
            "too few distinct rows; upload more, or pass modes=none"
        )
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, {k: round(v, 6) for k, v in scores.items()}


def fit_centres(points: np.ndarray, n_modes: int, config: ClusterConfig = CONFIG) -> np.ndarray:
    """Centres float64 [K, d] of K-means on fit rows points [n, d] (a seeded subsample of at
    most max_fit_rows); DiagnosticsError naming the fix when a cluster gets fewer than 2 rows
    (fewer distinct rows than modes)."""
    if points.shape[0] > config.max_fit_rows:
        rng = np.random.default_rng(config.seed + 2)
        points = points[np.sort(rng.choice(points.shape[0], config.max_fit_rows, False))]
    fit = best_kmeans(points, n_modes, config.seed, config.n_init)
    sizes = np.bincount(fit.labels, minlength=n_modes)
    if sizes.min() < 2:
        raise DiagnosticsError(
            f"K-means with {n_modes} modes leaves a cluster with {int(sizes.min())} row(s): the "
            "reference has too few distinct rows for that many modes; pass a smaller modes=K"
        )
    return fit.centres


def auto_centres(
    points: np.ndarray, scores: dict[int, float], config: ClusterConfig = CONFIG
) -> tuple[int, np.ndarray]:
    """(K, centres [K, d]) for the silhouette rule: the best-scoring K whose K-means on all the
    fit rows gives every cluster >= 2 rows (the silhouette ran on a subsample, so its best K may
    not), trying the next best K otherwise; the user asked for no particular K, so `auto` never
    fails where some K fits. DiagnosticsError when none does."""
    for n_modes in sorted(scores, key=lambda k: (-scores[k], k)):
        try:
            return n_modes, fit_centres(points, n_modes, config)
        except DiagnosticsError:
            continue
    raise DiagnosticsError(
        "no clustering of the reference into 2 or more modes of >= 2 rows each: too few "
        "distinct rows; upload more, or pass modes=none"
    )


def by_share(
    features: np.ndarray, centres: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres [K, D] ordered by decreasing share of the rows features [N, D] nearest them,
    ties by index; each row's mode int64 [N] in that order; its distance float64 [N])."""
    labels, distance = nearest_modes(features, centres)
    order = np.argsort(-np.bincount(labels, minlength=centres.shape[0]), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return centres[order], rank[labels], distance


def high_quality_radii(
    labels: np.ndarray, distance: np.ndarray, n_modes: int, quantile: float
) -> np.ndarray:
    """Each mode's `quantile` of the distances float64 [n] of the rows labelled with it
    (labels int [n]) to its centre: float64 [K] (0 for a mode no row is nearest)."""
    radii = np.zeros(n_modes)
    for mode in np.unique(labels):
        radii[mode] = np.quantile(distance[labels == mode], quantile)
    return radii


def calibrated_rates(
    labels: np.ndarray, distance: np.ndarray, radii: np.ndarray, config: ClusterConfig = CONFIG
) -> tuple[np.ndarray, float]:
    """(rate float64 [K], pooled rate) from the held-out rows' modes labels int [m] and
    distances float64 [m]: the share of each mode's held-out rows within its radius, shrunk
    towards the pooled share with shrinkage_rows pseudo-rows,
    rate_k = (hits_k + c pooled) / (rows_k + c). Without held-out rows: 1."""
    if labels.size == 0:
        return np.ones(radii.size), 1.0
    hit = distance <= radii[labels]
    rows = np.bincount(labels, minlength=radii.size)
    hits = np.bincount(labels[hit], minlength=radii.size)
    pooled = float(hit.mean())
    shrink = config.shrinkage_rows
    return (hits + shrink * pooled) / (rows + shrink), pooled


def exemplar_rows(labels: np.ndarray, distance: np.ndarray, n_modes: int, count: int) -> np.ndarray:
    """int64 [K, count]: for each mode the rows labelled with it, nearest its centre first
    (ties by row), -1 padded. labels int [N], distance float64 [N] to that centre."""
    rows = np.full((n_modes, count), -1, dtype=np.int64)
    order = np.lexsort((np.arange(labels.size), distance, labels))  # by mode, then distance
    starts = np.searchsorted(labels[order], np.arange(n_modes))
    ends = np.searchsorted(labels[order], np.arange(n_modes), side="right")
    for mode in range(n_modes):
        chosen = order[starts[mode] : min(ends[mode], starts[mode] + count)]
        rows[mode, : chosen.size] = chosen
    return rows


def check_modes(n_modes: int, n_rows: int, config: ClusterConfig = CONFIG) -> None:
    """DiagnosticsError, naming the fix, unless 2 <= n_modes <= largest_modes(n_rows)."""
    largest = largest_modes(n_rows, config)
    if largest < 2 or not 2 <= n_modes <= largest:
        per_mode = config.min_rows_per_mode / (1 - config.held_out_fraction)
        need = int(np.ceil(max(n_modes, 2) * per_mode))
        raise DiagnosticsError(
            f"{n_modes} modes need 2 <= K <= {max(largest, 2)} for {n_rows} reference rows "
            f"({config.min_rows_per_mode} fit rows per mode, {config.max_modes} modes at most): "
            f"upload at least {need} rows, pass a smaller modes=K, or modes=none"
        )


def discover_modes(
    features: np.ndarray, n_modes: int | None = None, config: ClusterConfig = CONFIG
) -> tuple[ClusterModes, dict[str, Any]]:
    """Cluster reference features float64 [N, D] into modes (the module docstring's steps).

    n_modes: K, or None for the silhouette rule. Returns the modes and the card's `modes`
    object (plain JSON: k, rule, scores, seed, sizes, radii, weights, success, exemplar rows).
    DiagnosticsError when K is out of range for N or the rows are too few or too alike.
    """
    with blas_single_threaded():  # [n, K] products are small: BLAS threads only contend
        return _discover(features, n_modes, config)


def _discover(
    features: np.ndarray, n_modes: int | None, config: ClusterConfig
) -> tuple[ClusterModes, dict[str, Any]]:
    n_rows = features.shape[0]
    fit_index, held_index = split_rows(n_rows, config)
    fit_points = features[fit_index]
    scores = None
    if n_modes is None:
        check_modes(2, n_rows, config)
        n_modes, scores = choose_modes(fit_points, config)
        n_modes, fitted = auto_centres(fit_points, scores, config)
    else:
        check_modes(n_modes, n_rows, config)
        fitted = fit_centres(fit_points, n_modes, config)
    centres, labels, distance = by_share(features, fitted)
    radii = high_quality_radii(
        labels[fit_index], distance[fit_index], n_modes, config.radius_quantile
    )
    rates, pooled = calibrated_rates(labels[held_index], distance[held_index], radii, config)
    weights = np.bincount(labels, minlength=n_modes) / n_rows
    modes = ClusterModes(
        centres=centres,
        radii=radii,
        weights=weights,
        success=weights * rates,
        exemplar_rows=exemplar_rows(labels, distance, n_modes, config.exemplars),
    )
    return modes, modes_card(modes, scores, pooled, fit_index.size, held_index.size, config)


def modes_card(
    modes: ClusterModes,
    scores: dict | None,
    pooled: float,
    n_fit: int,
    n_held_out: int,
    config: ClusterConfig,
) -> dict[str, Any]:
    """The card's `reference.modes` object (the centres themselves live in centres.npy)."""
    return {
        "method": "kmeans",
        "k": modes.n_modes,
        "k_rule": "user" if scores is None else "silhouette",
        "silhouette": None if scores is None else {str(k): v for k, v in scores.items()},
        "seed": config.seed,
        "n_fit": n_fit,
        "n_held_out": n_held_out,
        "radius_quantile": config.radius_quantile,
        "held_out_high_quality": pooled,
        "radii": modes.radii.tolist(),
        "weights": modes.weights.tolist(),
        "success": modes.success.tolist(),
        "exemplar_rows": modes.exemplar_rows.tolist(),
    }


def modes_from_card(spec: dict[str, Any], centres: np.ndarray) -> ClusterModes:
    """The ClusterModes of a card's `modes` object and its centres float64 [K, D]."""
    keys = ("radii", "weights", "success")
    arrays = {key: np.asarray(spec[key], dtype=np.float64) for key in keys}
    for value in (centres, *arrays.values()):
        value.setflags(write=False)
    rows = np.asarray(spec["exemplar_rows"], dtype=np.int64).reshape(len(arrays["radii"]), -1)
    return ClusterModes(centres=centres, exemplar_rows=rows, **arrays)


def cluster_mode_stats(
    features: np.ndarray, modes: ClusterModes, block_size: int = DEFAULT_BLOCK_SIZE
) -> ModeStats:
    """Mode statistics of batch features float64 [N, D] against discovered modes: each sample
    counts for its nearest centre when within that centre's radius (high quality)."""
    labels, distance = nearest_modes(features, modes.centres, block_size)
    high_quality = distance <= modes.radii[labels]
    histogram = np.bincount(labels[high_quality], minlength=modes.n_modes).astype(np.int64)
    rule = "lie within the radius of their nearest discovered mode"
    return histogram_stats(histogram, features.shape[0], modes.weights, modes.success, rule)


def exemplars_of(listed: list[int], modes: ClusterModes) -> list[dict[str, Any]]:
    """For each listed mode (the missing, or the starved): {"mode": k, "reference_rows": [rows
    nearest its centre]}."""
    return [{"mode": k, "reference_rows": modes.exemplars_of(k)} for k in listed]
