"""Benchmark: real 28x28 MNIST digits diagnosed against a reference of discovered modes, the
4,000 training digits embedded by the bundled `mnist-embedding` model.

    python -m bench.mnist_cluster_modes [--trials 100] [--seed 0] [--modes auto|K ...]

The service's path for `POST /v1/references` with `embedding=mnist-embedding` and a diagnosis
against it, through the same functions (service.references.embedded_spec and with_modes, then
lab.diagnostics.report.diagnose on the batch's features as raw vectors, as
service.api.diagnostics.diagnose_with does): the reference's modes are discovered by K-means
(K by the silhouette rule for `auto`). Each cluster stands for the digit most of its reference
rows are (its purity: that share). The batches are bench.mnist_modes's, from the 1,000
held-out digits no model saw: a missing-digit trial succeeds when the verdict is
`partial_collapse` and the modes it names, missing or starved (lab.diagnostics.verdict's
starved rule), are exactly the clusters standing for the removed digit (the table also gives
the rate by `missing` alone, the rule before the starved rule); a random half succeeds when it
is `healthy`. For each failure: the held-out digits that
still landed, high quality, in a removed digit's cluster, by true label.
"""

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

from bench.mnist_modes import BATCH, held_out_digits, trial_batches
from lab.cards import load_feature_model
from lab.classify import embed_images
from lab.diagnostics.mixture import nearest_modes
from lab.diagnostics.report import diagnose
from service.config import REPO_MODELS
from service.references import embedded_spec, with_modes
from trainer.datasets.images import split_digits

MODEL = "mnist-embedding"


def reference_of(models: Path, requested: int | str) -> dict:
    """The reference the service would store for the 4,000 training digits embedded by MODEL
    with `requested` modes ("auto" or K), the embedded held-out digits and everyone's labels:
    {"spec", "features" [4000, D], "modes", "labels" [4000], "held_out" [1000, D],
    "held_out_labels" [1000], "digit_of" [K] (majority label), "purity" [K], "sizes" [K]}."""
    model = load_feature_model(models / MODEL, "cpu", kind="embedding")
    images, labels = split_digits("train", "mnist")
    embedded = embed_images(model.session, model.card, images.numpy())
    spec, features = embedded_spec(None, MODEL, model.version["version"], model.card, embedded)
    discovered = with_modes(spec, features, requested, images.numpy())
    modes, labels = discovered.modes, labels.numpy()
    nearest, _ = nearest_modes(features, modes.centres)
    counts = np.stack(
        [np.bincount(labels[nearest == k], minlength=10) for k in range(modes.n_modes)]
    )
    held_images, held_labels = held_out_digits()
    return {
        "spec": {**spec, "embedding": "raw", "sample_shape": [features.shape[1]]},
        "features": features,
        "modes": modes,
        "labels": labels,
        "held_out": embed_images(model.session, model.card, held_images),
        "held_out_labels": held_labels,
        "digit_of": counts.argmax(axis=1),
        "purity": counts.max(axis=1) / np.maximum(counts.sum(axis=1), 1),
        "sizes": counts.sum(axis=1),
    }


def strays(reference: dict, rows: np.ndarray, clusters: list[int]) -> collections.Counter:
    """True labels of the batch's rows that are high quality on one of `clusters`."""
    modes = reference["modes"]
    nearest, distance = nearest_modes(reference["held_out"][rows], modes.centres)
    hit = np.isin(nearest, clusters) & (distance <= modes.radii[nearest])
    return collections.Counter(reference["held_out_labels"][rows][hit].tolist())


def run_trials(reference: dict, trials: int, seed: int) -> dict[str, dict]:
    """{kind: {"n", "successes", "by_missing" (successes by `missing` alone), "failures":
    [(removed digit, status, named modes, {true label: held-out digits high quality on the
    removed digit's clusters})]}}."""
    results: dict[str, dict] = {}
    for kind, missing, rows in trial_batches(reference["held_out_labels"], trials, seed):
        batch = reference["held_out"][rows]
        report = diagnose(
            batch, reference["spec"], MODEL, reference["features"], None, reference["modes"]
        )
        status = report["verdict"]["status"]
        expected = np.flatnonzero(reference["digit_of"] == missing).tolist()
        named = sorted(report["modes"]["missing"] + report["modes"]["starved"])
        if missing is None:
            success = by_missing = status == "healthy"
        else:
            success = status == "partial_collapse" and named == expected
            by_missing = status == "partial_collapse" and report["modes"]["missing"] == expected
        result = results.setdefault(kind, {"n": 0, "successes": 0, "by_missing": 0, "failures": []})
        result["n"] += 1
        result["successes"] += success
        result["by_missing"] += by_missing
        if not success:
            landed = dict(strays(reference, rows, expected)) if expected else {}
            result["failures"].append((missing, status, named, landed))
    return results


def print_reference(reference: dict, requested: int | str) -> None:
    card = reference["spec"]["modes"]
    scores = card["silhouette"]
    rule = f"silhouette (best {scores[str(card['k'])]:.3f})" if scores else "user"
    print(
        f"\nmodes={requested}: K = {card['k']} by {rule}; held-out rows within radius "
        f"{card['held_out_high_quality']:.1%}"
    )
    print("\n| cluster | digit | purity | rows |")
    print("|---|---|---|---|")
    for k, (digit, purity, size) in enumerate(
        zip(reference["digit_of"], reference["purity"], reference["sizes"], strict=True)
    ):
        print(f"| {k} | {digit} | {purity:.1%} | {size} |")


def print_results(results: dict, requested: int | str) -> None:
    rules = {
        "missing digit": "partial_collapse naming exactly the removed digit's cluster(s), "
        "missing or starved",
        "random half": "healthy",
    }
    print("\n| modes | trials | batch | success rule | rate | by `missing` alone |")
    print("|---|---|---|---|---|---|")
    for kind, result in results.items():
        rate, strict = result["successes"] / result["n"], result["by_missing"] / result["n"]
        print(
            f"| {requested} | {result['n']} | {kind} ({BATCH} held-out digits) | "
            f"{rules[kind]} | {rate:.0%} | {strict:.0%} |"
        )
    by_digit: dict = collections.defaultdict(lambda: [0, collections.Counter(), []])
    for kind, result in results.items():
        for missing, status, named, landed in result["failures"]:
            entry = by_digit[(kind, missing)]
            entry[0] += 1
            entry[1][f"{status}, named {named}"] += 1
            entry[2].append(sum(landed.values()))
    for (kind, missing), (count, outcomes, landed) in sorted(by_digit.items(), key=str):
        print(
            f"- {kind}, digit {missing} removed: {count} failure(s) ({dict(outcomes)}); "
            f"held-out digits of other classes high quality in its cluster: {landed}"
        )


def print_strays(reference: dict) -> None:
    """For each cluster: the 1,000 held-out digits of other labels that are high quality on it
    (the ones a batch without its digit can still draw)."""
    modes, labels = reference["modes"], reference["held_out_labels"]
    nearest, distance = nearest_modes(reference["held_out"], modes.centres)
    high_quality = distance <= modes.radii[nearest]
    print("\nheld-out digits high quality on a cluster of another digit (of 1,000):")
    for k, digit in enumerate(reference["digit_of"]):
        stray = high_quality & (nearest == k) & (labels != digit)
        counts = collections.Counter(labels[stray].tolist())
        print(f"- cluster {k} (digit {digit}): {int(stray.sum())} {dict(sorted(counts.items()))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="trials of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=["auto"], help="auto and/or K values")
    parser.add_argument("--models", type=Path, default=REPO_MODELS, help="the model repository")
    args = parser.parse_args()
    for requested in args.modes:
        start = time.perf_counter()
        requested = requested if requested == "auto" else int(requested)
        reference = reference_of(args.models, requested)
        print_reference(reference, requested)
        print_results(run_trials(reference, args.trials, args.seed), requested)
        print_strays(reference)
        print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
