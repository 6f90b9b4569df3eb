"""NDB/K: the number of statistically different bins (Richardson & Weiss 2018, section 4).

"On GANs and GMMs" (NeurIPS 2018): cluster the reference into K bins with K-means, assign the
reference and the samples to their nearest bin centre, and test each bin's two proportions
with a two-proportion z-test at significance alpha; NDB is the number of bins whose
proportions differ, reported as NDB/K. A mode-dropping sampler leaves bins empty or starved;
a perfect one still flags about alpha K bins by chance. The Jensen-Shannon divergence between
the two bin histograms (natural log) is reported beside it.
"""

import math

import numpy as np

from .blocks import nearest_centres
from .errors import DiagnosticsError
from .kmeans import KMeansFit, kmeans_fit

MAX_BINS = 100  # Richardson & Weiss use K = 100
MIN_POINTS_PER_BIN = 20  # smaller references get K = N_ref // 20 bins (>= 20 points a bin)
ALPHA = 0.05


def two_proportion_p_values(
    count_a: np.ndarray, total_a: int, count_b: np.ndarray, total_b: int
) -> np.ndarray:
    """Two-sided p-values of the pooled two-proportion z-test, float64 [K].

    z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with the pooled p = (c_a + c_b) /
    (n_a + n_b); p-value = P(|Z| >= |z|) = erfc(|z| / sqrt 2). A bin empty in both: 1.
    """
    share_a, share_b = count_a / total_a, count_b / total_b
    pooled = (count_a + count_b) / (total_a + total_b)
    error = np.sqrt(pooled * (1.0 - pooled) * (1.0 / total_a + 1.0 / total_b))
    safe = np.where(error > 0, error, 1.0)
    z = np.where(error > 0, np.abs(share_a - share_b) / safe, 0.0)
    return np.array([math.erfc(value / math.sqrt(2.0)) for value in z])


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2, in nats; in [0, ln 2].

    p, q: float64 [K] >= 0, each summing to 1. Terms with p_k = 0 contribute 0.
    """
    mixture = (p + q) / 2.0
    total = 0.0
    for share in (p, q):
        seen = share > 0
        total += 0.5 * float(np.sum(share[seen] * np.log(share[seen] / mixture[seen])))
    return total


def default_bins(n_reference: int) -> int:
    """K = min(100, N_ref // 20): 100 bins as in the paper, >= 20 reference points per bin."""
    return min(MAX_BINS, n_reference // MIN_POINTS_PER_BIN)


def ndb(
    reference: np.ndarray,
    samples: np.ndarray,
    n_bins: int | None = None,
    alpha: float = ALPHA,
    seed: int = 0,
    fit: KMeansFit | None = None,
) -> dict[str, float | int | list[int]]:
    """NDB/K of samples [M, d] against reference [N, d] (any int/float dtype, same d).

    n_bins: K (default default_bins(N), which must be >= 2). Returns "n_bins" K, "ndb" (number
    of bins with p-value < alpha), "ndb_over_k", "different_bins" (their indices, ascending),
    "reference_histogram" / "sample_histogram" (counts per bin) and "js_divergence" (nats).
    fit: kmeans_fit(reference, K, seed) when the caller has it already (features.py keeps it
    per reference), else it is computed here.
    """
    reference, samples = np.asarray(reference, np.float64), np.asarray(samples, np.float64)
    if reference.ndim != 2 or samples.ndim != 2 or reference.shape[1] != samples.shape[1]:
        raise DiagnosticsError("reference and samples must be [N, d] arrays with the same d")
    n_bins = default_bins(reference.shape[0]) if n_bins is None else n_bins
    if n_bins < 2 or n_bins > reference.shape[0] or samples.shape[0] == 0:
        raise DiagnosticsError(
            f"NDB needs 2 <= K <= N_ref bins and samples; got K = {n_bins}, "
            f"N_ref = {reference.shape[0]} (default K = N_ref // {MIN_POINTS_PER_BIN})"
        )
    if fit is None:
        fit = kmeans_fit(reference, n_bins, seed)  # its labels: the reference's bins
    reference_counts = np.bincount(fit.labels, minlength=n_bins)
    sample_counts = np.bincount(nearest_centres(samples, fit.centres)[0], minlength=n_bins)
    p_values = two_proportion_p_values(
        reference_counts, reference.shape[0], sample_counts, samples.shape[0]
    )
    different = np.flatnonzero(p_values < alpha)
    return {
        "n_bins": n_bins,
        "ndb": int(different.size),
        "ndb_over_k": different.size / n_bins,
        "different_bins": different.tolist(),
        "reference_histogram": reference_counts.tolist(),
        "sample_histogram": sample_counts.tolist(),
        "js_divergence": jensen_shannon(
            reference_counts / reference.shape[0], sample_counts / samples.shape[0]
        ),
    }
