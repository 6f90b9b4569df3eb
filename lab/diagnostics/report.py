"""The diagnostics report of a sample batch against a reference card's `reference` object.

Numbers follow the protocol of Metz et al. 2017 (Unrolled GAN), Srivastava et al. 2017
(VEEGAN) and Lin et al. 2018 (PacGAN): modes captured, fraction of high-quality samples and
KL between the generated mode histogram and the reference weights; see docs/diagnostics.md.
The reference type is dispatched here once per question: mode_stats (which modes, if any)
and feature_inputs (which vectors the feature metrics compare). The report's keys are spelled
only here (report_of and the functions below it), from the typed statistics of statistics.py.
Everything returned is plain Python (int, float, list, None): json.dumps(allow_nan=False) works.
"""

from typing import Any

import numpy as np

from lab.conditioning import class_modes

from .classes import Classes, classes_section
from .classifier import (
    argmax_histogram,
    classified_histogram,
    classifier_sample_shape,
    confidence_threshold,
)
from .clusters import ClusterModes, cluster_mode_stats, exemplars_of
from .duplicates import duplicates
from .embedding import embed
from .errors import DiagnosticsError
from .features import feature_metrics
from .members import Members, members_section
from .mixture import GaussianMixture, mode_metrics
from .statistics import (
    ChiSquare,
    FeatureStats,
    ModeStats,
    feature_stats,
    finite_or_none,
    histogram_stats,
    no_feature_stats,
)
from .verdict import Verdict, starved_modes, verdict

MIXTURE_REFERENCE_SIZE = (1_000, 10_000)  # exact draws: the batch size, clipped to this range
MIXTURE_REFERENCE_SEED = 0
REFERENCE_TYPES = ("gaussian_mixture", "classifier", "features")
CLASS_TYPES = ("gaussian_mixture", "classifier")  # references a conditional model's classes split


# Largest magnitude a sample value may have: squared distances of d <= 4,096 such values stay
# below float64's maximum (4 * 1e300 * 4096 < 1.8e308); beyond it distances overflow to inf.
MAX_ABS_VALUE = 1e150


def validate_samples(samples: np.ndarray, dim: int) -> np.ndarray:
    """samples as float64 [N, dim], or DiagnosticsError saying, for a human, why not.

    Refused: a non-numeric dtype (object, string, bool, complex), not 2-D, N == 0,
    the wrong number of columns, rows containing NaN or Inf or values beyond MAX_ABS_VALUE.
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
    huge_rows = np.flatnonzero(np.any(np.abs(samples) > MAX_ABS_VALUE, axis=1))
    if huge_rows.size:
        raise DiagnosticsError(
            f"{huge_rows.size} of {samples.shape[0]} rows hold values beyond +-{MAX_ABS_VALUE:g} "
            f"(first bad row: {int(huge_rows[0])}): their distances overflow float64; "
            "rescale the samples"
        )
    return samples


def flatten(samples: np.ndarray) -> np.ndarray:
    """A batch [N, ...] as [N, values per sample] (images: their pixels, C, H, W order)."""
    samples = np.asarray(samples)
    return samples.reshape(samples.shape[0], -1) if samples.ndim > 2 else samples


def mixture_reference_size(n_samples: int) -> int:
    """Exact mixture draws that stand in for real data in the feature metrics."""
    return int(np.clip(n_samples, *MIXTURE_REFERENCE_SIZE))


def reference_type(reference: dict[str, Any] | None) -> str | None:
    """The reference's "type" (one of REFERENCE_TYPES), None for no reference at all;
    DiagnosticsError for any other value."""
    if reference is None:
        return None
    kind = reference.get("type") if isinstance(reference, dict) else None
    if kind not in REFERENCE_TYPES:
        raise DiagnosticsError(f"unsupported reference type {kind!r}")
    return kind


def reference_sample_shape(reference: dict[str, Any]) -> tuple[int, ...] | None:
    """The samples a reference takes: (d,) vectors for a mixture or raw features, (C, H, W)
    images for a classifier or pixel features; None when the card does not say."""
    kind = reference_type(reference)
    if kind == "gaussian_mixture" and isinstance(reference.get("dim"), int):
        return (reference["dim"],)
    if kind == "classifier" and "input" in reference:
        return classifier_sample_shape(reference)
    if kind == "features" and "sample_shape" in reference:
        return tuple(reference["sample_shape"])
    return None


def mode_stats(
    samples: np.ndarray,
    reference: dict[str, Any] | None,
    classified: tuple[np.ndarray, np.ndarray] | None = None,
    clusters: ClusterModes | None = None,
) -> ModeStats | None:
    """The mode statistics of a batch, or None for a reference without modes (features
    without clusters, none).

    gaussian_mixture: samples [N, d], validated here; classifier: classified = (probabilities
    [N, C, classes], embeddings [N, D]) from the reference's classifier (samples unused);
    features with clusters (the modes discovered when it was created, clusters.py): samples
    as embedded by feature_inputs, float64 [N, D].
    """
    kind = reference_type(reference)
    if kind == "features" and clusters is not None:
        return cluster_mode_stats(samples, clusters)
    if kind == "gaussian_mixture":
        mixture = GaussianMixture.from_spec(reference)
        return mixture_mode_stats(validate_samples(samples, mixture.dim), mixture)
    if kind == "classifier":
        if classified is None:
            raise DiagnosticsError("a classifier reference needs the classifier's outputs")
        return classified_mode_stats(reference, classified[0])
    return None


def mixture_mode_stats(samples: np.ndarray, mixture: GaussianMixture) -> ModeStats:
    """Coverage, divergences and ideal-sampler expectations of validated samples [N, d]."""
    histogram = mode_metrics(samples, mixture)["histogram"]
    success = mixture.weights * mixture.high_quality_probability()
    rule = f"lie within {mixture.high_quality_stds:g} std of a mode centre"
    return histogram_stats(histogram, samples.shape[0], mixture.weights, success, rule)


def classified_mode_stats(reference: dict[str, Any], probabilities: np.ndarray) -> ModeStats:
    """Mode statistics of a batch classified by its reference: probabilities [N, C, classes].

    all_samples counts every sample by its argmax mode (no confidence filter; the
    Stacked-MNIST papers' protocol): about 0.019 nats of expected KL for 26,000 samples on
    1,000 modes.
    """
    weights = np.asarray(reference["weights"], dtype=np.float64)
    weights = weights / weights.sum()
    every = argmax_histogram(probabilities, reference)
    all_samples = histogram_stats(
        every, int(every.sum()), weights, weights, "are counted by their argmax mode"
    )
    histogram = classified_histogram(probabilities, reference)
    rule = f"are classified with confidence >= {confidence_threshold(reference):g}"
    n_samples = probabilities.shape[0]
    return histogram_stats(histogram, n_samples, weights, weights, rule, all_samples)


def feature_inputs(
    samples: np.ndarray,
    reference: dict[str, Any] | None,
    reference_features: np.ndarray | None,
    classified: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(batch features float64 [N, D], reference features float64 [N_ref, D] or None) that
    the feature metrics compare, for the reference types diagnose() describes."""
    kind = reference_type(reference)
    if kind is None:
        features = validate_samples(flatten(samples), int(np.prod(np.shape(samples)[1:])))
    elif kind == "gaussian_mixture":
        mixture = GaussianMixture.from_spec(reference)
        features = validate_samples(samples, mixture.dim)
        if reference_features is None:
            size = mixture_reference_size(features.shape[0])
            reference_features = mixture.sample(size, MIXTURE_REFERENCE_SEED)
    elif kind == "classifier":
        if classified is None or reference_features is None:
            raise DiagnosticsError("a classifier reference needs the classifier's outputs")
        features = classified[1]
    else:
        if reference_features is None:
            raise DiagnosticsError("a features reference needs its reference features")
        embedded = embed(samples, reference["embedding"], tuple(reference["sample_shape"]))
        features = validate_samples(embedded, reference_features.shape[1])
    if reference_features is not None:
        reference_features = np.asarray(reference_features, dtype=np.float64)
    return features, reference_features


def diagnose(
    samples: np.ndarray,
    reference: dict[str, Any] | None,
    reference_name: str | None,
    reference_features: np.ndarray | None = None,
    classified: tuple[np.ndarray, np.ndarray] | None = None,
    clusters: ClusterModes | None = None,
    members: Members | None = None,
    classes: Classes | None = None,
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
    clusters: a features reference's discovered modes (clusters.py): the mode keys then count
    them, and `modes.missing_exemplars` (`starved_exemplars`) names the reference rows nearest
    each missing (starved) centre.
    members: which ensemble member drew each sample: the report then has an `ensemble` section
    (members.py: each member's histogram, when the reference has modes).
    classes: the class each sample of a conditional model was drawn for: the report then has a
    `classes` section (classes.py: each class against its own modes; mixture and classifier
    references).
    Raises DiagnosticsError (HTTP 422) for an unusable batch or reference. The keys are
    described in docs/diagnostics.md; values are plain Python, never NaN or inf.
    """
    features, reference_features = feature_inputs(
        samples, reference, reference_features, classified
    )
    is_features = reference_type(reference) == "features"
    mode_samples = features if is_features else samples
    modes = mode_stats(mode_samples, reference, classified, clusters)
    section = feature_metrics(features, reference_features)
    numbers = feature_stats(section, features.shape[0])
    report = report_of(reference_name, modes, numbers, section, verdict(modes, numbers))
    if modes is not None and is_features and clusters is not None:
        report["modes"]["missing_exemplars"] = exemplars_of(modes.missing, clusters)
        starved = report["modes"]["starved"]
        report["modes"]["starved_exemplars"] = exemplars_of(starved, clusters)
    if modes is not None and members is not None:

        def modes_of(rows: np.ndarray) -> ModeStats | None:
            subset = None if classified is None else tuple(part[rows] for part in classified)
            return mode_stats(mode_samples[rows], reference, subset, clusters)

        report["ensemble"] = members_section(members, modes_of, modes.total)
    if modes is not None and classes is not None and reference_type(reference) in CLASS_TYPES:
        threshold = (section["duplicates"] or {}).get("near_threshold")
        report["classes"] = per_class(
            mode_samples, reference, classified, modes.total, classes, features, threshold
        )
    return report


def per_class(
    samples: np.ndarray,
    reference: dict[str, Any],
    classified: tuple[np.ndarray, np.ndarray] | None,
    total: int,
    classes: Classes,
    features: np.ndarray | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The `classes` section (classes.py) of a batch against a mixture or classifier reference
    of `total` modes; with the batch's feature vectors [N, D] and the report's near-duplicate
    threshold, each class's duplicates among its own rows too."""

    def class_stats(rows: np.ndarray, own: range) -> tuple[ModeStats, ModeStats | None]:
        subset = None if classified is None else tuple(part[rows] for part in classified)
        everywhere = mode_stats(samples[rows], reference, subset)
        return everywhere, restricted_stats(samples[rows], reference, everywhere, own)

    def class_duplicates(rows: np.ndarray) -> dict[str, float] | None:
        if features is None or threshold is None:
            return None
        found = duplicates(features[rows], threshold=threshold)
        return {key: found[key] for key in ("exact_fraction", "near_fraction")}

    partition = class_modes(total, classes.count)
    return classes_section(classes, partition, class_stats, class_duplicates)


def restricted_stats(
    samples: np.ndarray, reference: dict[str, Any], everywhere: ModeStats, modes: range
) -> ModeStats | None:
    """The mode statistics of a batch against the reference's `modes` alone, their weights
    renormalised, for a class of a conditional model; None when those modes all have weight
    0. A mixture's other centres are removed (a sample is then judged by the class's centres);
    a classifier's histograms are the batch's over every mode (`everywhere`), cut to `modes`."""
    own = slice(modes.start, modes.stop)
    weights = np.asarray(reference["weights"], dtype=np.float64)[own]
    if weights.sum() <= 0:
        return None
    weights = weights / weights.sum()
    if reference_type(reference) == "gaussian_mixture":
        centres = reference["centres"][own]
        mixture = GaussianMixture.from_spec({**reference, "centres": centres, "weights": weights})
        return mixture_mode_stats(validate_samples(samples, mixture.dim), mixture)
    n, every = everywhere.n_samples, everywhere.all_samples.histogram[own]
    all_samples = histogram_stats(every, n, weights, weights, "are counted by their argmax mode")
    rule = f"are classified with confidence >= {confidence_threshold(reference):g}"
    return histogram_stats(everywhere.histogram[own], n, weights, weights, rule, all_samples)


def diagnose_modes(
    samples: np.ndarray,
    reference: dict[str, Any],
    classified: tuple[np.ndarray, np.ndarray] | None = None,
    with_verdict: bool = False,
    classes: Classes | None = None,
) -> dict[str, Any]:
    """Only the mode keys of diagnose()'s report (modes, high_quality_fraction, kl, ...), the
    same numbers without the feature-space section: for a mixture reference (samples [N, d]) or
    a classifier reference (classified as for diagnose). What the trainer's collapse table reads:
    the k-NN metrics on 26,000 stacked digits would cost a minute per evaluation.

    with_verdict adds `verdict` ({"status", "reasons"}, as in the report): the verdict of the
    mode rules alone, the feature-space rules (which need the k-NN metrics) left out.
    classes: a conditional model's labels: the `classes` section, as in diagnose().
    """
    modes = mode_stats(samples, reference, classified)
    if modes is None:
        kind = reference_type(reference)
        raise DiagnosticsError(f"reference type {kind!r} has no modes to count")
    section = mode_section(modes)
    if with_verdict:
        judged = verdict(modes, no_feature_stats(modes.n_samples))
        section["verdict"] = {"status": judged.status, "reasons": list(judged.reasons)}
    if classes is not None and reference_type(reference) in CLASS_TYPES:
        section["classes"] = per_class(samples, reference, classified, modes.total, classes)
    return section


def report_of(
    reference_name: str | None,
    modes: ModeStats | None,
    features: FeatureStats,
    section: dict[str, Any],
    judged: Verdict,
) -> dict[str, Any]:
    """The report (docs/diagnostics.md): the reference name, N, the mode keys (None without
    modes), duplicates and features from feature_metrics' section, and the verdict."""
    return {
        "reference": reference_name,
        "n_samples": features.n_samples if modes is None else modes.n_samples,
        **mode_section(modes),
        "duplicates": section["duplicates"] or {"exact_fraction": features.duplicate_fraction},
        "features": {key: value for key, value in section.items() if key != "duplicates"},
        "verdict": {"status": judged.status, "reasons": list(judged.reasons)},
    }


def mode_section(modes: ModeStats | None) -> dict[str, Any]:
    """The report's mode keys, in order; every value None for a reference without modes."""
    present = modes is not None
    return {
        "modes": modes_counts(modes) if present else None,
        "high_quality_fraction": modes.high_quality_fraction if present else None,
        "kl": finite_or_none(modes.kl) if present else None,
        "kl_expected_ideal": modes.kl_expected_ideal if present else None,
        "kl_expected_ideal_std": modes.kl_expected_ideal_std if present else None,
        "reverse_kl": modes.reverse_kl if present else None,
        "chi_square": chi_square_section(modes.chi_square) if present else None,
        "expected_covered_ideal": modes.expected_covered_ideal if present else None,
        "expected_covered_ideal_std": modes.expected_covered_ideal_std if present else None,
        "expected_covered_same_quality": (modes.expected_covered_same_quality if present else None),
        "expected_covered_same_quality_std": (
            modes.expected_covered_same_quality_std if present else None
        ),
        "all_samples": all_samples_section(modes.all_samples) if present else None,
    }


def modes_counts(modes: ModeStats) -> dict[str, Any]:
    """The report's `modes` object: total, covered, missing, starved (covered modes with far
    fewer samples than chance allows: verdict.starved_modes), histogram (K ints)."""
    return {
        "total": modes.total,
        "covered": modes.covered,
        "missing": modes.missing,
        "starved": [starved.mode for starved in starved_modes(modes)],
        "histogram": modes.histogram.tolist(),
    }


def chi_square_section(test: ChiSquare) -> dict[str, float | int | None]:
    """The report's `chi_square` object."""
    return {"statistic": test.statistic, "dof": test.dof, "p_value": test.p_value}


def all_samples_section(every: ModeStats | None) -> dict[str, Any] | None:
    """The report's `all_samples` object (classifier references; None otherwise)."""
    if every is None:
        return None
    return {
        "covered": every.covered,
        "missing": every.missing,
        "kl": finite_or_none(every.kl),
        "kl_expected_ideal": every.kl_expected_ideal,
        "kl_expected_ideal_std": every.kl_expected_ideal_std,
    }
