"""Benchmark: real 28x28 MNIST digits diagnosed against the bundled `mnist` reference.

    python -m bench.mnist_modes [--trials 100] [--seed 0] [--models models]

The reference's classifier trained on the fixed 4,000 training digits, whose embeddings are the
reference features; the batches here are drawn from the other 1,000 (100 per class), which no
model ever saw. Over `trials` seeded trials:
- missing digit: the digit (trial mod 10) removed, 500 digits drawn without replacement from
  the other nine classes' 900: a success is `partial_collapse` whose missing modes are exactly
  that digit;
- random half: 500 of the 1,000 drawn without replacement: a success is `healthy`.
Then stacked-mnist: 26,000 triples of held-out digits (the Stacked-MNIST papers' count)
against the `stacked-mnist` reference (modes covered vs what an exact sampler covers), and the
held-out digits that pass the confidence rule at the diagnostics' default and at the threshold
of the classifier card (mnist-classifier).
The classifier runs once over the held-out digits (lab.classify, as the service does); each
batch is a subset of those outputs, diagnosed by lab.diagnostics.report.diagnose with the
reference's spec (its card with its classifier's tensors and rule). Prints markdown tables.
"""

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

from lab.cards import load_classifier_reference
from lab.classify import classify
from lab.diagnostics.classifier import CONFIDENCE_THRESHOLD, classified_modes, confidence_threshold
from lab.diagnostics.report import diagnose
from service.config import REPO_MODELS
from trainer.datasets.images import split_digits

BATCH = 500
STACKED_TRIPLES = 26_000


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,000 held-out MNIST digits: images float32 [1000, 1, 28, 28] in [-1, 1], labels."""
    images, labels = split_digits("held_out", "mnist")
    return images.numpy(), labels.numpy()


def trial_batches(labels: np.ndarray, trials: int, seed: int):
    """Yield (kind, missing digit or None, row indices [BATCH]) for both trial kinds."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        missing = trial % 10
        pool = np.flatnonzero(labels != missing)
        yield "missing digit", missing, rng.choice(pool, BATCH, replace=False)
    for _ in range(trials):
        yield "random half", None, rng.choice(len(labels), BATCH, replace=False)


def succeeded(report: dict, missing: int | None) -> bool:
    """partial_collapse naming exactly the missing digit, or healthy for a random half."""
    status = report["verdict"]["status"]
    if missing is None:
        return status == "healthy"
    return status == "partial_collapse" and report["modes"]["missing"] == [missing]


def run_trials(models: Path, trials: int, seed: int) -> dict[str, dict]:
    """{kind: {"n", "successes", "failures": Counter of (status, missing, first reason)}}."""
    reference = load_classifier_reference(models / "mnist", "cpu")
    images, labels = held_out_digits()
    probabilities, embeddings = classify(reference.session, reference.spec, images)
    results: dict[str, dict] = {}
    for kind, missing, rows in trial_batches(labels, trials, seed):
        classified = (probabilities[rows], embeddings[rows])
        report = diagnose(images[rows], reference.spec, "mnist", reference.features, classified)
        result = results.setdefault(
            kind, {"n": 0, "successes": 0, "failures": collections.Counter()}
        )
        result["n"] += 1
        if succeeded(report, missing):
            result["successes"] += 1
        else:
            reasons = report["verdict"]["reasons"]
            key = (report["verdict"]["status"], str(report["modes"]["missing"]), reasons[0][:90])
            result["failures"][key] += 1
    return results


def confidence_numbers(models: Path) -> list[dict[str, float]]:
    """Held-out digits passing the confidence rule, and misclassified ones among them, at the
    diagnostics' default threshold and at the classifier card's."""
    reference = load_classifier_reference(models / "mnist", "cpu")
    images, labels = held_out_digits()
    probabilities, _ = classify(reference.session, reference.spec, images)
    modes, confidence = classified_modes(probabilities)
    rows = []
    for threshold in sorted({CONFIDENCE_THRESHOLD, confidence_threshold(reference.spec)}):
        confident = confidence >= threshold
        rows.append(
            {
                "threshold": threshold,
                "accuracy": float(np.mean(modes == labels)),
                "confident": float(confident.mean()),
                "confident_wrong": int(np.sum(confident & (modes != labels))),
                "wrong": int(np.sum(modes != labels)),
            }
        )
    return rows


def stacked_sanity(models: Path, seed: int) -> dict:
    """STACKED_TRIPLES triples of held-out digits (each channel's digit drawn independently)
    against `stacked-mnist`: the report's mode numbers and verdict."""
    reference = load_classifier_reference(models / "stacked-mnist", "cpu")
    images, _ = held_out_digits()
    rng = np.random.default_rng(seed)
    rows = rng.integers(len(images), size=(STACKED_TRIPLES, 3))
    batch = images[rows, 0]  # [n, 3, 28, 28]
    classified = classify(reference.session, reference.spec, batch)
    report = diagnose(batch, reference.spec, "stacked-mnist", reference.features, classified)
    return report


def print_tables(results: dict, confidence: list, stacked: dict, seconds: float) -> None:
    print("| trials | batch | success rule | rate |")
    print("|---|---|---|---|")
    rules = {
        "missing digit": "partial_collapse naming exactly the missing digit",
        "random half": "healthy",
    }
    for kind, result in results.items():
        rate = result["successes"] / result["n"]
        print(f"| {result['n']} | {kind} ({BATCH} held-out digits) | {rules[kind]} | {rate:.0%} |")
    for kind, result in results.items():
        for (status, missing, reason), count in result["failures"].most_common():
            print(f"\n{kind} failure x{count}: {status}, missing {missing}: {reason}")
    print(f"\nheld-out digits: accuracy {confidence[0]['accuracy']:.1%}")
    for row in confidence:
        print(
            f"- confidence >= {row['threshold']:g}: {row['confident']:.1%} pass, "
            f"{row['confident_wrong']} of the {row['wrong']} misclassified ones among them"
        )
    modes = stacked["modes"]
    print(
        f"\nstacked-mnist, {stacked['n_samples']} triples of held-out digits: covers "
        f"{modes['covered']} of {modes['total']} modes (an exact sampler: "
        f"{stacked['expected_covered_ideal']:.1f} +- {stacked['expected_covered_ideal_std']:.1f}),"
        f" high quality {stacked['high_quality_fraction']:.1%}, KL {stacked['kl']:.3f} nats "
        f"(exact sampler {stacked['kl_expected_ideal']:.3f}); verdict "
        f"{stacked['verdict']['status']}: {stacked['verdict']['reasons'][0]}"
    )
    print(f"\n({seconds:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="trials of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=Path, default=REPO_MODELS, help="the model repository")
    args = parser.parse_args()
    start = time.perf_counter()
    results = run_trials(args.models, args.trials, args.seed)
    confidence = confidence_numbers(args.models)
    stacked = stacked_sanity(args.models, args.seed)
    print_tables(results, confidence, stacked, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
