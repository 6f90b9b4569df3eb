"""The diagnostics report of a sample batch against a Gaussian-mixture reference.

Numbers follow the protocol of Metz et al. 2017 (Unrolled GAN), Srivastava et al. 2017
(VEEGAN) and Lin et al. 2018 (PacGAN): modes captured, fraction of high-quality samples and
KL between the generated mode histogram and the reference weights; see docs/diagnostics.md.
Everything returned is plain Python (int, float, list, None): json.dumps(allow_nan=False) works.
"""

import math
from typing import Any

import numpy as np

from .classifier import CONFIDENCE_THRESHOLD, argmax_histogram, classified_histogram
from .duplicates import exact_duplicates
from .embedding import embed
from .errors import DiagnosticsError
from .features import feature_metrics
from .mixture import (
    HIGH_QUALITY_STDS,
    GaussianMixture,
    expected_coverage,
    high_quality_probability,
    mode_metrics,
)
from .special import chi2_sf, log_gamma
from .verdict import verdict

MIXTURE_REFERENCE_SIZE = (1_000, 10_000)  # exact draws: the batch size, clipped to this range
MIXTURE_REFERENCE_SEED = 0
JEFFREYS_PSEUDO_COUNT = 0.5  # added to every mode's count before the reverse KL
_WINDOW_STDS = 12.0  # binomial support kept around the mean for the exact expected KL


def validate_samples(samples: np.ndarray, dim: int) -> np.ndarray:
    """samples as float64 [N, dim], or DiagnosticsError saying, for a human, why not.

    Refused: a non-numeric dtype (object, string, bool, complex), not 2-D, N == 0,
    the wrong number of columns, rows containing NaN or Inf.
    """
    samples = np.asarray(samples)
    if samples.dtype.kind not in "iuf":
        raise DiagnosticsError(f"samples must be numbers (int or float), got dtype {samples.dtype}")
    if samples.ndim != 2:
        raise DiagnosticsError(
            f"samples must be a 2-D array [N, {dim}], got shape {tuple(samples.shape)}"
        )
    if samples.shape[0] == 0:
        raise DiagnosticsError("no samples: the batch has 0 rows")
    if samples.shape[1] != dim:
        raise DiagnosticsError(
            f"samples have {samples.shape[1]} columns but the reference has dimension {dim}"
        )
    samples = samples.astype(np.float64, copy=False)
    bad_rows = np.flatnonzero(~np.all(np.isfinite(samples), axis=1))
    if bad_rows.size:
        raise DiagnosticsError(
            f"{bad_rows.size} of {samples.shape[0]} rows contain NaN or Inf "
            f"(first bad row: {int(bad_rows[0])})"
        )
    return samples


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


def chi_square(histogram: np.ndarray, weights: np.ndarray) -> dict[str, float | int | None]:
    """Pearson's test of the high-quality histogram against HQ * weights.

    Over the modes of positive weight (a mode of weight 0 expects nothing); dof = K+ - 1.
    Returns {"statistic", "dof", "p_value"} (p from the chi-square survival function);
    statistic and p_value are None when no high-quality sample sits on such a mode, and
    0 and 1 when a single mode carries all the weight (dof 0: nothing to test).
    """
    on_ref = weights > 0
    observed, probabilities = histogram[on_ref], weights[on_ref] / weights[on_ref].sum()
    dof = int(on_ref.sum()) - 1
    if observed.sum() == 0:
        return {"statistic": None, "dof": dof, "p_value": None}
    if dof == 0:
        return {"statistic": 0.0, "dof": 0, "p_value": 1.0}
    expected = observed.sum() * probabilities
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return {"statistic": statistic, "dof": dof, "p_value": float(chi2_sf(statistic, dof))}


def _mode_statistics(samples: np.ndarray, mixture: GaussianMixture) -> dict[str, Any]:
    """Coverage, divergences and ideal-sampler expectations of validated samples [N, d]."""
    metrics = mode_metrics(samples, mixture)
    success = mixture.weights * high_quality_probability(mixture.dim)
    stats = histogram_statistics(metrics["histogram"], samples.shape[0], mixture.weights, success)
    return {
        **stats,
        "duplicate_fraction": exact_duplicates(samples)["exact_fraction"],
        "high_quality_rule": f"lie within {HIGH_QUALITY_STDS:g} std of a mode centre",
    }


def _classified_statistics(
    samples: np.ndarray, reference: dict[str, Any], probabilities: np.ndarray
) -> dict[str, Any]:
    """Mode statistics of a batch classified by its reference: probabilities [N, C, classes]."""
    weights = np.asarray(reference["weights"], dtype=np.float64)
    weights = weights / weights.sum()
    histogram = classified_histogram(probabilities, reference)
    stats = histogram_statistics(histogram, probabilities.shape[0], weights, weights)
    return {
        **stats,
        "all_samples": all_samples_statistics(argmax_histogram(probabilities, reference), weights),
        "duplicate_fraction": exact_duplicates(flatten(samples))["exact_fraction"],
        "high_quality_rule": f"are classified with confidence >= {CONFIDENCE_THRESHOLD:g}",
    }


def all_samples_statistics(histogram: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """The report's `all_samples` section from the histogram of every sample's argmax mode
    int [K] (no confidence filter; the Stacked-MNIST papers' protocol): modes seen, the ones
    missing, and KL(p_gen || weights) beside an exact sampler's mean and std at the same size
    (about 0.019 nats for 26,000 samples on 1,000 modes)."""
    stats = histogram_statistics(histogram, int(histogram.sum()), weights, weights)
    kl = stats["kl"]
    return {
        "covered": stats["covered"],
        "missing": stats["missing"],
        "kl": kl if kl is None or math.isfinite(kl) else None,
        "kl_expected_ideal": stats["kl_expected"],
        "kl_expected_ideal_std": stats["kl_expected_std"],
    }


def histogram_statistics(
    histogram: np.ndarray, n_samples: int, weights: np.ndarray, success: np.ndarray
) -> dict[str, Any]:
    """Mode statistics from the high-quality histogram int [K] of a batch of n_samples.

    weights: reference mode distribution [K] (sums to 1); success: [K], the chance one exact
    draw is a high-quality hit on each mode (for expected_covered_ideal).
    """
    n_hq = int(histogram.sum())
    captured = histogram > 0
    kl, reverse_kl = kl_divergences(histogram, weights)
    kl_ideal = expected_kl_ideal(weights, n_hq) if n_hq else (None, None)
    covered_ideal = expected_coverage(success, n_samples)
    return {
        "n_samples": n_samples,
        "n_modes": len(weights),
        "support": int(np.sum(weights > 0)),
        "covered": int(captured.sum()),
        "missing": np.flatnonzero(~captured & (weights > 0)).tolist(),
        "histogram": histogram.tolist(),
        "high_quality_count": n_hq,
        "high_quality_fraction": n_hq / n_samples,
        "kl": kl,
        "reverse_kl": reverse_kl if n_hq else None,
        "kl_expected": kl_ideal[0],
        "kl_expected_std": kl_ideal[1],
        "chi_square": chi_square(histogram, weights),
        "expected_covered": covered_ideal[0],
        "expected_covered_std": covered_ideal[1],
    }


def mixture_reference_size(n_samples: int) -> int:
    """Exact mixture draws that stand in for real data in the feature metrics."""
    return int(np.clip(n_samples, *MIXTURE_REFERENCE_SIZE))


def _mode_report(stats: dict[str, Any]) -> dict[str, Any]:
    """The mode keys of the report (None-free apart from kl when it is undefined)."""
    kl = stats["kl"]
    return {
        "modes": {
            "total": stats["n_modes"],
            "covered": stats["covered"],
            "missing": stats["missing"],
            "histogram": stats["histogram"],
        },
        "high_quality_fraction": stats["high_quality_fraction"],
        "kl": kl if kl is None or math.isfinite(kl) else None,
        "kl_expected_ideal": stats["kl_expected"],
        "kl_expected_ideal_std": stats["kl_expected_std"],
        "reverse_kl": stats["reverse_kl"],
        "chi_square": stats["chi_square"],
        "expected_covered_ideal": stats["expected_covered"],
        "expected_covered_ideal_std": stats["expected_covered_std"],
        "all_samples": stats.get("all_samples"),
    }


NO_MODES = dict.fromkeys(
    (
        "modes",
        "high_quality_fraction",
        "kl",
        "kl_expected_ideal",
        "kl_expected_ideal_std",
        "reverse_kl",
        "chi_square",
        "expected_covered_ideal",
        "expected_covered_ideal_std",
        "all_samples",
    )
)


def flatten(samples: np.ndarray) -> np.ndarray:
    """A batch [N, ...] as [N, values per sample] (images: their pixels, C, H, W order)."""
    samples = np.asarray(samples)
    return samples.reshape(samples.shape[0], -1) if samples.ndim > 2 else samples


def diagnose(
    samples: np.ndarray,
    reference: dict[str, Any],
    reference_name: str | None,
    reference_features: np.ndarray | None = None,
    classified: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The report of a batch against a reference card's `reference` object.

    reference: {"type": "gaussian_mixture", ...} (samples [N, d]; the mode metrics, and the
    feature metrics against exact mixture draws unless reference_features is given) or
    {"type": "features", "embedding", "sample_shape", ...} (samples embedded by
    embedding.embed; reference_features float64 [N_ref, D] required), or
    {"type": "classifier", ...} (classified = (probabilities [N, C, classes] of each channel,
    embeddings [N, D]) from the reference's classifier, see classifier.py; reference_features
    the real samples' embeddings), or None (no reference:
    the batch's flattened values as features, the Vendi score and duplicates only).
    Raises DiagnosticsError (HTTP 422) for an unusable batch or reference. The keys are
    described in docs/diagnostics.md; values are plain Python, never NaN or inf.
    """
    kind = reference.get("type") if isinstance(reference, dict) else None
    if reference is None:
        features = validate_samples(flatten(samples), int(np.prod(np.shape(samples)[1:])))
        stats = {"n_samples": features.shape[0]}
        report = dict(NO_MODES)
    elif kind == "gaussian_mixture":
        mixture = GaussianMixture.from_spec(reference)
        features = validate_samples(samples, mixture.dim)
        stats = _mode_statistics(features, mixture)
        if reference_features is None:
            size = mixture_reference_size(features.shape[0])
            reference_features = mixture.sample(size, MIXTURE_REFERENCE_SEED)
        report = _mode_report(stats)
    elif kind == "classifier":
        if classified is None or reference_features is None:
            raise DiagnosticsError("a classifier reference needs the classifier's outputs")
        probabilities, features = classified
        stats = _classified_statistics(samples, reference, probabilities)
        report = _mode_report(stats)
    elif kind == "features":
        if reference_features is None:
            raise DiagnosticsError("a features reference needs its reference features")
        embedded = embed(samples, reference["embedding"], tuple(reference["sample_shape"]))
        features = validate_samples(embedded, reference_features.shape[1])
        stats = {"n_samples": features.shape[0]}
        report = dict(NO_MODES)
    else:
        raise DiagnosticsError(f"unsupported reference type {kind!r}")
    if reference_features is not None:
        reference_features = np.asarray(reference_features, dtype=np.float64)
    section = feature_metrics(features, reference_features)
    stats |= feature_statistics(section)
    return {
        "reference": reference_name,
        "n_samples": stats["n_samples"],
        **report,
        "duplicates": section["duplicates"] or {"exact_fraction": stats["duplicate_fraction"]},
        "features": {key: value for key, value in section.items() if key != "duplicates"},
        "verdict": verdict(stats),
    }


def diagnose_modes(
    samples: np.ndarray,
    reference: dict[str, Any],
    classified: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Only the mode keys of diagnose()'s report (modes, high_quality_fraction, kl, ...), the
    same numbers without the feature-space section: for a mixture reference (samples [N, d]) or
    a classifier reference (classified as for diagnose). What the trainer's collapse table reads:
    the k-NN metrics on 26,000 stacked digits would cost a minute per evaluation.
    """
    kind = reference.get("type") if isinstance(reference, dict) else None
    if kind == "gaussian_mixture":
        mixture = GaussianMixture.from_spec(reference)
        stats = _mode_statistics(validate_samples(samples, mixture.dim), mixture)
    elif kind == "classifier":
        if classified is None:
            raise DiagnosticsError("a classifier reference needs the classifier's outputs")
        stats = _classified_statistics(samples, reference, classified[0])
    else:
        raise DiagnosticsError(f"reference type {kind!r} has no modes to count")
    return _mode_report(stats)


def feature_statistics(section: dict[str, Any]) -> dict[str, Any]:
    """The numbers of the feature section that the verdict rules read (None when skipped)."""
    manifold, bins, repeats = section["manifold"], section["ndb"], section["duplicates"]
    return {
        "coverage": manifold and manifold["coverage"],
        "coverage_expected": manifold and manifold["coverage_expected_identical"],
        "precision": manifold and manifold["precision"],
        "n_reference": section["n_reference"],
        "ndb": bins and bins["ndb"],
        "ndb_bins": bins and bins["n_bins"],
        "vendi": section["vendi"],
        "vendi_reference": section["vendi_reference"],
        "duplicate_fraction": repeats["exact_fraction"] if repeats else 0.0,
        "near_duplicate_fraction": repeats["near_fraction"] if repeats else 0.0,
    }
