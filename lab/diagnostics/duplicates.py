"""Exact and near duplicates in a batch, and the birthday-paradox support estimate.

Identical outputs are the bluntest collapse. Exact duplicates are identical rows. Near
duplicates are pairs closer than a threshold: by default a tenth of the median
nearest-neighbour distance within the reference (two independent draws of the reference are
rarely that close), or, without a reference, the larger of a tenth of the batch's own median
nearest-neighbour distance and a thousandth of its RMS row norm. The first scale is the
reference rule applied to the batch; the second keeps the threshold from vanishing when most
rows collapse onto one point (then the median nearest-neighbour distance is ~0 itself).

Support estimate (Arora & Zhang 2017, "Do GANs actually learn the distribution? An empirical
study", section 2): for a uniform distribution on S items, n draws contain on average
n (n - 1) / (2 S) colliding pairs, so D observed near-duplicate pairs give S ~ n (n - 1) / (2 D).
With D = 0 the support is only bounded: larger than about n (n - 1) / 2.

Pairs are decided on exact squared distances sum((x_i - x_j)^2) <= threshold^2, found by
neighbours.neighbour_sweep (float32 filter tiles, exact recomputation near the threshold). The
report counts them in the same sweep that finds the batch's k-NN radii (features.py), with the
threshold from the reference's nearest-neighbour distances that the manifold metrics share.
"""

import numpy as np

from .blocks import FILTER_BLOCK_SIZE
from .errors import DiagnosticsError
from .neighbours import nearest_neighbour_squared_distances, neighbour_sweep

REFERENCE_RELATIVE_THRESHOLD = 0.1  # x median nearest-neighbour distance of the reference
BATCH_NORM_THRESHOLD = 1e-3  # x RMS row norm of the batch: the floor without a reference


def near_duplicate_threshold(
    samples: np.ndarray, reference: np.ndarray | None = None, block_size: int = FILTER_BLOCK_SIZE
) -> float:
    """The default near-duplicate distance (see the module docstring), in feature units.

    samples: float64 [n, d]; reference: float64 [N, d] with N >= 2, or None.
    """
    scale = samples if reference is None else reference
    nearest = nearest_neighbour_squared_distances(scale, 1, block_size)
    return threshold_from_neighbours(nearest, None if reference is not None else samples)


def threshold_from_neighbours(nearest: np.ndarray, samples: np.ndarray | None = None) -> float:
    """near_duplicate_threshold from nearest_neighbour_squared_distances at any k >= 1 (float64
    [N, k + 1], column 1 the nearest other row) of the reference, or of the batch, then given
    as samples float64 [n, d] for the RMS-norm floor."""
    threshold = REFERENCE_RELATIVE_THRESHOLD * float(np.sqrt(np.median(nearest[:, 1])))
    if samples is not None:
        rms_norm = float(np.sqrt(np.mean(np.sum(samples**2, axis=1))))
        threshold = max(threshold, BATCH_NORM_THRESHOLD * rms_norm)
    return threshold


def exact_duplicates(samples: np.ndarray) -> dict[str, int | float]:
    """Identical rows of samples [n, d]: "exact_repeats" (rows equal to an earlier row),
    "exact_fraction" (repeats / n) and "exact_pairs" (sum over groups of C(size, 2))."""
    counts = np.unique(samples, axis=0, return_counts=True)[1]
    repeats = int(samples.shape[0] - counts.size)
    pairs = int(np.sum(counts * (counts - 1) // 2))
    return {
        "exact_repeats": repeats,
        "exact_fraction": repeats / samples.shape[0],
        "exact_pairs": pairs,
    }


def near_duplicate_pairs(
    samples: np.ndarray, threshold: float, block_size: int = FILTER_BLOCK_SIZE
) -> tuple[int, np.ndarray]:
    """(pairs i < j with |x_i - x_j| <= threshold, bool [n]: row has such a partner).

    samples: float64 [n, d]; blockwise, memory O(n d + block_size^2). Exact duplicates count.
    """
    near = neighbour_sweep(samples, None, threshold * threshold, block_size)[1]
    return near.pairs, near.has_partner


def support_estimate(n_samples: int, pairs: int) -> float | None:
    """Arora & Zhang's S ~ n (n - 1) / (2 D) from D colliding pairs; None when D = 0."""
    return n_samples * (n_samples - 1) / (2.0 * pairs) if pairs > 0 else None


def duplicates(
    samples: np.ndarray,
    reference: np.ndarray | None = None,
    threshold: float | None = None,
    block_size: int = FILTER_BLOCK_SIZE,
) -> dict[str, int | float | None]:
    """Exact and near duplicates of samples [n, d] (any int/float dtype) and the support.

    threshold: near-duplicate distance in feature units (default near_duplicate_threshold).
    Returns exact_duplicates' keys plus "near_threshold", "near_pairs", "near_fraction"
    (rows with a partner within the threshold), "support_estimate" (None when no pair) and
    "support_lower_bound" (n (n - 1) / 2, meaningful when support_estimate is None).
    """
    points = np.ascontiguousarray(samples, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2:
        raise DiagnosticsError("duplicates need an [n, d] array with n >= 2")
    if reference is not None:
        reference = np.ascontiguousarray(reference, dtype=np.float64)
    if threshold is None:
        threshold = near_duplicate_threshold(points, reference, block_size)
    pairs, has_partner = near_duplicate_pairs(points, threshold, block_size)
    return duplicates_from_pairs(points, threshold, pairs, has_partner)


def duplicates_from_pairs(
    points: np.ndarray, threshold: float, pairs: int, has_partner: np.ndarray
) -> dict[str, int | float | None]:
    """duplicates' dictionary for points float64 [n, d] (n >= 2) given near_duplicate_pairs'
    answer at threshold (feature units), however it was counted."""
    n = points.shape[0]
    return {
        **exact_duplicates(points),
        "near_threshold": float(threshold),
        "near_pairs": pairs,
        "near_fraction": float(has_partner.mean()),
        "support_estimate": support_estimate(n, pairs),
        "support_lower_bound": n * (n - 1) / 2.0,
    }
