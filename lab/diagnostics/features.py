"""The feature-space section of the report: k-NN manifold metrics, NDB/K, Vendi, duplicates.

Works for any reference with features (vectors drawn from a mixture, an uploaded batch of
real samples). A metric that the batch or the reference is too small for is None, and the
reason is listed under "skipped".

The distance passes are shared: the reference's k-NN sweep gives the manifold radii and the
near-duplicate threshold, and the batch's k-NN sweep counts the near-duplicate pairs too
(shared_passes); the values are those of manifold_metrics and duplicates called apart. The
reference's own passes (its k-NN sweep, its K-means) are kept per reference rows and reused by
the next report against the same rows (reference_passes.py): the same values, computed once.
"""

from typing import Any

import numpy as np

from .duplicates import duplicates, duplicates_from_pairs, threshold_from_neighbours
from .errors import DiagnosticsError
from .kmeans import KMeansFit, kmeans_fit
from .manifold import (
    DENSITY_COVERAGE_K,
    PRECISION_RECALL_K,
    manifold_from_neighbours,
    manifold_inputs,
)
from .ndb import MIN_POINTS_PER_BIN, default_bins, ndb
from .neighbours import nearest_neighbour_squared_distances, neighbour_sweep
from .reference_passes import REFERENCE_PASSES, reference_digest
from .vendi import MAX_SAMPLES as VENDI_MAX_SAMPLES
from .vendi import vendi_score

NEIGHBOURS_K = max(PRECISION_RECALL_K, DENSITY_COVERAGE_K)  # the reference's k-NN sweep
MIN_REFERENCE = NEIGHBOURS_K + 1
KNN_PART, KMEANS_PART = "k-NN", "K-means"  # the reference's passes, as REFERENCE_PASSES keeps them
MIN_BATCH = PRECISION_RECALL_K + 1


def feature_metrics(samples: np.ndarray, reference: np.ndarray | None) -> dict[str, Any]:
    """Metrics of samples [M, D] against reference [N, D] (float64 features, same D).

    Without a reference only the Vendi score and the duplicates (batch-relative threshold)
    are computed; the reference-bound metrics are None.
    """
    if reference is None:
        return unreferenced_metrics(samples)
    m, n = samples.shape[0], reference.shape[0]
    section: dict[str, Any] = {"n_reference": n, "skipped": []}
    digest = reference_digest(reference)
    shared = attempt(
        section,
        "manifold",
        m >= MIN_BATCH and n >= MIN_REFERENCE,
        f"needs >= {MIN_BATCH} samples and >= {MIN_REFERENCE} reference rows",
        lambda: shared_passes(reference, samples, digest),
    )
    section["manifold"] = None if shared is None else shared[0]
    section["ndb"] = attempt(
        section,
        "ndb",
        n >= 2 * MIN_POINTS_PER_BIN,
        f"needs >= {2 * MIN_POINTS_PER_BIN} reference rows",
        lambda: ndb(reference, samples, fit=reference_bins(reference, digest)),
    )
    section["vendi"] = attempt(section, "vendi", True, "", lambda: vendi_score(samples))
    # The reference's own Vendi score at the batch's size (the score grows with n up to the
    # subsample cap), so that the two compare like with like.
    size = min(m, n, VENDI_MAX_SAMPLES)
    section["vendi_reference"] = attempt(
        section,
        "vendi_reference",
        size >= 1,
        "needs samples",
        lambda: vendi_score(reference, max_samples=size),
    )
    section["duplicates"] = (
        shared[1]
        if shared is not None
        else attempt(
            section,
            "duplicates",
            m >= 2,
            "needs >= 2 samples",
            lambda: duplicates(samples, reference if n >= 2 else None),
        )
    )
    return section


def shared_passes(
    reference: np.ndarray, samples: np.ndarray, digest: str | None = None
) -> tuple[dict, dict]:
    """(manifold_metrics(reference, samples), duplicates(samples, reference)) from two k-NN
    sweeps instead of four distance passes: the reference's k-NN distances give its radii and
    the near-duplicate threshold (column 1, the nearest other row), and the batch's sweep
    counts the pairs within that threshold while it finds the batch's radii.

    reference: float64 [N, D] with N > DENSITY_COVERAGE_K; samples: float64 [M, D] with
    M > PRECISION_RECALL_K. digest: reference_digest(reference) to keep the reference's sweep
    for the next call (REFERENCE_PASSES), None to compute it afresh.
    """
    real, fake = manifold_inputs(reference, samples, PRECISION_RECALL_K, DENSITY_COVERAGE_K)
    real_smallest = reference_neighbours(real, digest)
    threshold = threshold_from_neighbours(real_smallest)
    fake_smallest, near = neighbour_sweep(fake, PRECISION_RECALL_K, threshold * threshold)
    manifold = manifold_from_neighbours(real, fake, (real_smallest, fake_smallest))
    return manifold, duplicates_from_pairs(fake, threshold, near.pairs, near.has_partner)


def reference_neighbours(reference: np.ndarray, digest: str | None = None) -> np.ndarray:
    """The manifold metrics' k-NN squared distances of reference (float64 [N, D], N >
    NEIGHBOURS_K), float64 [N, NEIGHBOURS_K + 1], kept per digest (REFERENCE_PASSES)."""
    return REFERENCE_PASSES.get(
        digest, KNN_PART, lambda: nearest_neighbour_squared_distances(reference, NEIGHBOURS_K)
    )


def reference_bins(reference: np.ndarray, digest: str | None = None) -> KMeansFit | None:
    """NDB's K-means fit of reference (float64 [N, D]) at its default bins and seed, kept per
    digest (REFERENCE_PASSES); None when N is too small for two bins (ndb says why)."""
    n_bins = default_bins(reference.shape[0])  # one K per N, so per digest
    if n_bins < 2:
        return None
    return REFERENCE_PASSES.get(digest, KMEANS_PART, lambda: kmeans_fit(reference, n_bins))


def stored_passes(reference: np.ndarray) -> dict[str, np.ndarray]:
    """The reference's own passes as arrays to store beside it (a service's uploaded
    reference): `neighbours` (reference_neighbours) and `bin_centres`, `bin_labels`,
    `bin_inertia` (reference_bins), each where the reference is large enough for it."""
    digest, arrays = reference_digest(reference), {}
    if reference.shape[0] >= MIN_REFERENCE:
        arrays["neighbours"] = reference_neighbours(reference, digest)
    fit = reference_bins(reference, digest)
    if fit is not None:
        arrays |= {"bin_centres": fit.centres, "bin_labels": fit.labels}
        arrays["bin_inertia"] = np.array(fit.inertia)
    return arrays


def keep_stored_passes(reference: np.ndarray, arrays: dict[str, np.ndarray]) -> bool:
    """Keep the passes stored_passes gave for these reference rows (REFERENCE_PASSES), so that
    no report computes them again; False, keeping nothing, when they do not fit the rows."""
    n, d = reference.shape
    bins = default_bins(n)
    fits = (
        ("neighbours" not in arrays or arrays["neighbours"].shape == (n, NEIGHBOURS_K + 1))
        and ("bin_centres" not in arrays or arrays["bin_centres"].shape == (bins, d))
        and ("bin_labels" not in arrays or arrays["bin_labels"].shape == (n,))
    )
    labels = arrays.get("bin_labels")
    if fits and labels is not None and labels.size:
        fits = labels.dtype.kind == "i" and 0 <= labels.min() and labels.max() < bins
    if not fits or any(array.dtype.kind not in "fi" for array in arrays.values()):
        return False
    digest = reference_digest(reference)
    if "neighbours" in arrays:
        REFERENCE_PASSES.put(digest, KNN_PART, np.asarray(arrays["neighbours"], np.float64))
    if "bin_centres" in arrays and "bin_labels" in arrays and "bin_inertia" in arrays:
        fit = KMeansFit(
            np.asarray(arrays["bin_centres"], np.float64),
            np.asarray(arrays["bin_labels"], np.int64),
            float(arrays["bin_inertia"]),
        )
        REFERENCE_PASSES.put(digest, KMEANS_PART, fit)
    return True


def unreferenced_metrics(samples: np.ndarray) -> dict[str, Any]:
    """The metrics that need no reference: Vendi score and duplicates of samples [M, D]."""
    section: dict[str, Any] = {
        "n_reference": 0,
        "skipped": ["manifold, ndb: no reference"],
        "manifold": None,
        "ndb": None,
        "vendi_reference": None,
    }
    section["vendi"] = attempt(section, "vendi", True, "", lambda: vendi_score(samples))
    section["duplicates"] = attempt(
        section,
        "duplicates",
        samples.shape[0] >= 2,
        "needs >= 2 samples",
        lambda: duplicates(samples),
    )
    return section


def attempt(section: dict, name: str, possible: bool, requirement: str, compute) -> Any:
    """compute(), or None with the reason added to section["skipped"]."""
    if not possible:
        section["skipped"].append(f"{name}: {requirement}")
        return None
    try:
        return compute()
    except DiagnosticsError as error:  # e.g. Vendi on all-zero rows
        section["skipped"].append(f"{name}: {error}")
        return None
