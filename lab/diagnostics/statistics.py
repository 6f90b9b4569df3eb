"""The typed numbers of a diagnosed batch: what the verdict reads and the report spells out.

ModeStats holds the mode statistics of one histogram (the papers' protocol: modes captured,
KL against the reference weights, and what an exact sampler of the same size scores);
FeatureStats holds the numbers of the feature section that the verdict rules read. Field
names are the report's key words (docs/diagnostics.md); the report keys themselves are spelled
only in report.py. Numbers here are plain Python (int, float, None, list), apart from the
histogram (numpy int64 [K]).
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .mixture import expected_coverage
from .special import chi2_sf, log_gamma

JEFFREYS_PSEUDO_COUNT = 0.5  # added to every mode's count before the reverse KL
_WINDOW_STDS = 12.0  # binomial support kept around the mean for the exact expected KL


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's test of a histogram against HQ * weights (see chi_square).

    statistic and p_value are None when no high-quality sample sits on a mode of positive
    weight; dof = K+ - 1 (modes of positive weight, minus one).
    """

    statistic: float | None
    dof: int
    p_value: float | None


@dataclass(frozen=True, eq=False)  # eq by identity: an array field has no truth value
class ModeStats:
    """Mode statistics of a batch of n_samples from its histogram over K reference modes.

    Counts are ints; kl, reverse_kl and kl_expected_ideal(_std) are in nats, None when
    high_quality_count is 0 (kl may also be math.inf: high-quality samples on a mode of
    weight 0). high_quality_rule completes "only x% of samples ..." in the verdict's warning.
    all_samples: the same statistics of every sample's argmax mode (classifier references
    only; None otherwise).
    """

    n_samples: int
    total: int  # K, the reference's modes (weight 0 included)
    support: int  # K+, the modes of positive weight
    covered: int  # modes with at least one high-quality sample
    missing: list[int]  # modes of positive weight with none, ascending
    histogram: np.ndarray  # int64 [K], high-quality samples per mode
    high_quality_count: int
    high_quality_fraction: float  # high_quality_count / n_samples
    kl: float | None
    reverse_kl: float | None
    kl_expected_ideal: float | None  # mean kl of an exact sampler at the same count
    kl_expected_ideal_std: float | None
    chi_square: ChiSquare
    expected_covered_ideal: float  # modes an exact sampler of n_samples covers, mean
    expected_covered_ideal_std: float
    # modes an exact sampler covers with the batch's high_quality_count: what the coverage
    # rules compare with, so unreadable samples count as low quality, not as missing modes
    expected_covered_same_quality: float
    expected_covered_same_quality_std: float
    high_quality_rule: str
    # float [K]: each mode's share of an exact sampler's high-quality draws (the verdict's
    # inconclusive rule; not a report key)
    hit_shares: np.ndarray
    all_samples: "ModeStats | None" = None


@dataclass(frozen=True)
class FeatureStats:
    """The feature-section numbers the verdict reads, None where the metric was skipped.

    coverage, coverage_expected_identical and precision in [0, 1] (k-NN manifold metrics);
    ndb of ndb_bins K-means bins differ; vendi and vendi_reference are effective counts;
    duplicate_fraction (exact) and near_duplicate_fraction in [0, 1] (0.0 when skipped).
    """

    n_samples: int  # rows of the feature batch
    n_reference: int  # rows of the reference features (0 without a reference)
    coverage: float | None
    coverage_expected_identical: float | None
    precision: float | None
    ndb: int | None
    ndb_bins: int | None
    vendi: float | None
    vendi_reference: float | None
    duplicate_fraction: float
    near_duplicate_fraction: float


def no_feature_stats(n_samples: int) -> FeatureStats:
    """The FeatureStats of a batch of n_samples whose feature metrics were not computed: the
    verdict then applies the mode rules alone."""
    return FeatureStats(n_samples, 0, None, None, None, None, None, None, None, 0.0, 0.0)


def feature_stats(section: dict[str, Any], n_samples: int) -> FeatureStats:
    """The verdict's numbers from features.feature_metrics' section of n_samples rows."""
    manifold, bins, repeats = section["manifold"], section["ndb"], section["duplicates"]
    return FeatureStats(
        n_samples=n_samples,
        n_reference=section["n_reference"],
        coverage=manifold and manifold["coverage"],
        coverage_expected_identical=manifold and manifold["coverage_expected_identical"],
        precision=manifold and manifold["precision"],
        ndb=bins and bins["ndb"],
        ndb_bins=bins and bins["n_bins"],
        vendi=section["vendi"],
        vendi_reference=section["vendi_reference"],
        duplicate_fraction=repeats["exact_fraction"] if repeats else 0.0,
        near_duplicate_fraction=repeats["near_fraction"] if repeats else 0.0,
    )


def histogram_stats(
    histogram: np.ndarray,
    n_samples: int,
    weights: np.ndarray,
    success: np.ndarray,
    high_quality_rule: str,
    all_samples: ModeStats | None = None,
) -> ModeStats:
    """Mode statistics from the high-quality histogram int [K] of a batch of n_samples.

    weights: reference mode distribution float [K] (sums to 1); success: float [K], the
    chance one exact draw is a high-quality hit on each mode (for expected_covered_ideal; its
    shares, success / sum, for expected_covered_same_quality).
    """
    n_hq = int(histogram.sum())
    shares = hit_shares(success)
    same_quality = expected_coverage(shares, n_hq)
    captured = histogram > 0
    kl, reverse_kl = kl_divergences(histogram, weights)
    kl_ideal = expected_kl_ideal(weights, n_hq) if n_hq else (None, None)
    covered_ideal = expected_coverage(success, n_samples)
    return ModeStats(
        n_samples=n_samples,
        total=len(weights),
        support=int(np.sum(weights > 0)),
        covered=int(captured.sum()),
        missing=np.flatnonzero(~captured & (weights > 0)).tolist(),
        histogram=histogram,
        high_quality_count=n_hq,
        high_quality_fraction=n_hq / n_samples,
        kl=kl,
        reverse_kl=reverse_kl if n_hq else None,
        kl_expected_ideal=kl_ideal[0],
        kl_expected_ideal_std=kl_ideal[1],
        chi_square=chi_square(histogram, weights),
        expected_covered_ideal=covered_ideal[0],
        expected_covered_ideal_std=covered_ideal[1],
        expected_covered_same_quality=same_quality[0],
        expected_covered_same_quality_std=same_quality[1],
        high_quality_rule=high_quality_rule,
        hit_shares=shares,
        all_samples=all_samples,
    )


def hit_shares(success: np.ndarray) -> np.ndarray:
    """float [K]: the mode distribution of an exact sampler's high-quality draws, success / sum
    (success float [K] as for histogram_stats; all zeros when no draw can be high quality)."""
    success = np.asarray(success, dtype=np.float64)
    total = success.sum()
    return success / total if total > 0 else np.zeros_like(success)


def kl_divergences(histogram: np.ndarray, weights: np.ndarray) -> tuple[float | None, float]:
    """(KL(p_gen || p_ref), KL(p_ref || p_gen smoothed)) in nats.

    histogram: int [K] high-quality counts; weights: float [K] summing to 1.
    Forward: p_gen = histogram / sum; terms with p_gen = 0 contribute 0; None when the
    histogram is empty, inf when p_gen > 0 on a mode of weight 0.
    Reverse: p_gen smoothed with a Jeffreys pseudo-count of 0.5 per mode,
    (h_k + 0.5) / (HQ + 0.5 K), so it stays finite when modes are missing.
    """
    total = histogram.sum()
    smoothed = (histogram + JEFFREYS_PSEUDO_COUNT) / (total + JEFFREYS_PSEUDO_COUNT * len(weights))
    on_ref = weights > 0
    reverse = float(np.sum(weights[on_ref] * np.log(weights[on_ref] / smoothed[on_ref])))
    if total == 0:
        return None, reverse
    generated = histogram / total
    if np.any(generated[~on_ref] > 0):
        return math.inf, reverse
    seen = generated > 0
    return float(np.sum(generated[seen] * np.log(generated[seen] / weights[seen]))), reverse


def expected_kl_ideal(weights: np.ndarray, n_high_quality: int) -> tuple[float, float]:
    """(mean, std) of KL(p_gen || weights) in nats for n exact draws from the weights.

    The plug-in KL is biased upward at small n (about (K - 1) / 2n nats for large n), so the
    verdict compares with this instead of with 0. KL = sum_k g_k(c_k) with
    g_k(c) = (c/n) ln(c / (n w_k)) - c/n + w_k (the added terms sum to 0) and
    c_k ~ Binomial(n, w_k): the mean is exact by linearity; the std adds the per-mode
    variances as if the c_k were independent (the -c/n + w_k term removes the part the
    multinomial constraint cancels). Binomial mass is summed over mean +- 12 std.
    """
    n, w = n_high_quality, weights[weights > 0]
    mean, std = n * w, np.sqrt(n * w * (1.0 - w))
    low = np.maximum(np.floor(mean - _WINDOW_STDS * std - 8.0), 0.0)
    width = int(min(n + 1, np.ceil(2 * _WINDOW_STDS * std.max() + 17.0)))
    raw = low[:, None] + np.arange(width)[None, :]
    counts, share, w = np.minimum(raw, n), np.minimum(raw, n) / n, w[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 * log(0) and log1p(-1) are masked
        log_pmf = (
            log_gamma(n + 1.0)
            - log_gamma(counts + 1.0)
            - log_gamma(n - counts + 1.0)
            + counts * np.log(w)
            + np.where(counts < n, (n - counts) * np.log1p(-w), 0.0)
        )
        term = np.where(share > 0, share * np.log(share / w), 0.0) - share + w
    pmf = np.where(raw <= n, np.exp(log_pmf), 0.0)
    first = np.sum(pmf * term, axis=1)
    second = np.sum(pmf * term**2, axis=1)
    return float(first.sum()), float(np.sqrt(np.maximum(second - first**2, 0.0).sum()))


def chi_square(histogram: np.ndarray, weights: np.ndarray) -> ChiSquare:
    """Pearson's test of the high-quality histogram int [K] against HQ * weights float [K].

    Over the modes of positive weight (a mode of weight 0 expects nothing); dof = K+ - 1,
    p from the chi-square survival function. statistic and p_value are None when no
    high-quality sample sits on such a mode, and 0 and 1 when a single mode carries all the
    weight (dof 0: nothing to test).
    """
    on_ref = weights > 0
    observed, probabilities = histogram[on_ref], weights[on_ref] / weights[on_ref].sum()
    dof = int(on_ref.sum()) - 1
    if observed.sum() == 0:
        return ChiSquare(statistic=None, dof=dof, p_value=None)
    if dof == 0:
        return ChiSquare(statistic=0.0, dof=0, p_value=1.0)
    expected = observed.sum() * probabilities
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return ChiSquare(statistic=statistic, dof=dof, p_value=float(chi2_sf(statistic, dof)))


def finite_or_none(value: float | None) -> float | None:
    """value, or None when it is infinite (JSON has no inf; the verdict says so in words)."""
    return value if value is None or math.isfinite(value) else None
