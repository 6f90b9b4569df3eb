"""What the NDB rule sees in a stacked-digits model, and when the verdict looks at it.

The report bins the classifier reference's embeddings of the real stacks by K-means (100 bins)
and counts the bins whose share in the batch differs from the reference's (NDB; rule: more than
chance, 11.5 of 100). With modes, the verdict applies that rule only to a batch whose confident
share reaches LOW_QUALITY_FRACTION (50%): below it, blur alone moves samples between bins.

For each source (a bundled model, a GAN run folder or `real`, drawn as bench.stacked_kl draws
them: 26,000 images, seed 0), the report's own bins (kmeans_fit of the reference, seed 0) give:
NDB of every sample (the report's number); how many differing bins the batch over-fills and
under-fills, with the confident rate of its samples in each kind; NDB of the confident samples
only; and NDB of a random subset as large (numpy seed 0), since NDB's power falls with the
count. The last column says whether the verdict counts NDB for this batch and whether it fires.

    python -m bench.stacked_ndb real stacked-digits-r1-ema stacked-digits-cgan-glorot
"""

import numpy as np

from lab.classify import classify
from lab.diagnostics.blocks import nearest_centres
from lab.diagnostics.classifier import classified_modes, confidence_threshold
from lab.diagnostics.kmeans import KMeansFit, kmeans_fit
from lab.diagnostics.ndb import default_bins, ndb
from lab.diagnostics.verdict import LOW_QUALITY_FRACTION, ndb_limit
from service.config import REPO_MODELS
from trainer.evaluation import classifier_reference

from .stacked_kl import source_arguments, source_images

SUBSET_SEED = 0


def ndb_split(
    reference: np.ndarray, embeddings: np.ndarray, confident: np.ndarray, fit: KMeansFit
) -> dict:
    """NDB of embeddings [N, d] against reference [N_ref, d] in fit's bins: of every row, of the
    confident rows (bool [N]) and of a random subset as large; the differing bins of every row
    split into over- and under-filled ones, with the confident rate of the rows in each."""

    def in_bins(rows: np.ndarray) -> dict:  # NDB of these rows in fit's bins
        return ndb(reference, rows, len(fit.centres), fit=fit)

    every = in_bins(embeddings)
    bins = np.asarray(every["different_bins"], dtype=np.int64)
    reference_share = np.asarray(every["reference_histogram"]) / len(reference)
    sample_share = np.asarray(every["sample_histogram"]) / len(embeddings)
    over = bins[sample_share[bins] > reference_share[bins]]
    under = np.setdiff1d(bins, over)
    assigned = nearest_centres(embeddings, fit.centres)[0]  # each row's bin, as NDB assigns it
    subset = np.random.default_rng(SUBSET_SEED).permutation(len(embeddings))[: confident.sum()]
    return {
        "ndb": every["ndb"],
        "bins": every["n_bins"],
        "over": int(over.size),
        "under": int(under.size),
        "confident_over": rate_in(confident, assigned, over),
        "confident_under": rate_in(confident, assigned, under),
        "ndb_confident": in_bins(embeddings[confident])["ndb"],
        "ndb_subset": in_bins(embeddings[subset])["ndb"],
    }


def rate_in(confident: np.ndarray, assigned: np.ndarray, bins: np.ndarray) -> float | None:
    """The confident share of the rows that fall in `bins`; None when none does."""
    rows = np.isin(assigned, bins)
    return float(confident[rows].mean()) if rows.any() else None


def judged(confident_share: float, split: dict) -> str:
    """Whether the verdict counts NDB for a batch this sharp, and whether the rule fires."""
    if confident_share < LOW_QUALITY_FRACTION:
        return f"not judged (confident < {LOW_QUALITY_FRACTION:.0%})"
    return "fires" if split["ndb"] > ndb_limit(split["bins"]) else "passes"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}"


def main() -> None:
    args = source_arguments(__doc__)
    reference = classifier_reference(args.dataset, REPO_MODELS)
    features = np.asarray(reference.features, dtype=np.float64)
    fit = kmeans_fit(features, default_bins(len(features)), 0)
    print(
        f"NDB rule: more than {ndb_limit(fit.centres.shape[0]):.1f} of "
        f"{fit.centres.shape[0]} bins; {len(features)} reference rows\n"
    )
    print(
        "| source | confident % | NDB every sample | over / under | confident % in over / "
        "under bins | NDB confident only | NDB random subset as large | the verdict's NDB rule |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.sources:
        images = source_images(name, args.dataset)
        probabilities, embeddings = classify(reference.session, reference.spec, images)
        _, confidence = classified_modes(probabilities)
        confident = confidence >= confidence_threshold(reference.spec)
        split = ndb_split(features, np.asarray(embeddings, np.float64), confident, fit)
        print(
            f"| {name} | {100 * confident.mean():.1f} | {split['ndb']} | {split['over']} / "
            f"{split['under']} | {percent(split['confident_over'])} / "
            f"{percent(split['confident_under'])} | {split['ndb_confident']} | "
            f"{split['ndb_subset']} | {judged(float(confident.mean()), split)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
