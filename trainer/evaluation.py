"""Diagnose generated samples the way the service does, with the service's own code.

The 2-D mixtures are their own analytic reference (`GaussianMixture.reference_spec`). The image
datasets are judged by their reference card (`python -m trainer classifier` writes
models/digit-classifier and the references models/digits and models/stacked-digits naming it;
`python -m trainer classifier-reference stacked-digits4` adds models/stacked-digits4):
the classifier model's ONNX file and the reference's real-sample features, run by onnxruntime on
the CPU exactly as the service runs them, so a number means the same thing in the trainer, in a
card and through the API.
"""

import functools
from pathlib import Path
from typing import Any

import numpy as np

from lab.cards import ClassifierReference, load_classifier_reference
from lab.classify import classify
from lab.diagnostics import GaussianMixture as Reference
from lab.diagnostics import diagnose, diagnose_modes  # the shared metric core
from lab.diagnostics.classes import Classes
from lab.diagnostics.members import Members
from lab.diagnostics.mixture import mode_metrics
from trainer.datasets import GaussianMixture, get_dataset

REFERENCE_MODELS = Path(__file__).resolve().parents[1] / "models"  # the bundled repository


@functools.cache
def classifier_reference(dataset_name: str, models_dir: Path) -> ClassifierReference:
    """The classifier reference models_dir/<dataset_name> on the CPU (lab.cards); ValueError
    naming the command that writes it when missing."""
    folder = Path(models_dir) / dataset_name
    if not (folder / "card.json").is_file():
        raise ValueError(
            f"no classifier reference {folder / 'card.json'}: write it with "
            f"`python -m trainer classifier-reference {dataset_name} --models-dir {models_dir}` "
            f"(the classifier itself: `python -m trainer classifier --models-dir {models_dir}`)"
        )
    return load_classifier_reference(folder, "cpu")


def diagnose_samples(
    samples: np.ndarray,
    dataset_name: str,
    models_dir: Path = REFERENCE_MODELS,
    modes_only: bool = False,
    members: Members | None = None,
    classes: Classes | None = None,
) -> dict[str, Any]:
    """The service's report of samples [N, d] or images [N, C, 8, 8] against the dataset's
    reference (lab.diagnostics.diagnose), or only its mode keys and the mode rules' verdict
    when `modes_only` (diagnose_modes: the same numbers without the k-NN feature metrics).
    members: which ensemble member drew each sample (the full report's `ensemble` section);
    classes: which class each sample was drawn for (the `classes` section, either way)."""
    dataset = get_dataset(dataset_name)
    if isinstance(dataset, GaussianMixture):
        spec = dataset.reference_spec()
        if modes_only:
            return diagnose_modes(samples, spec, with_verdict=True, classes=classes)
        return diagnose(samples, spec, dataset_name, members=members, classes=classes)
    reference = classifier_reference(dataset_name, Path(models_dir))
    classified = classify(reference.session, reference.spec, samples)
    if modes_only:
        return diagnose_modes(samples, reference.spec, classified, True, classes)
    features = reference.features
    return diagnose(
        samples, reference.spec, dataset_name, features, classified, None, members, classes
    )


def protocol_numbers(report: dict[str, Any]) -> dict[str, Any]:
    """The collapse table's numbers from a report (diagnose_samples): modes_covered,
    modes_total, high_quality_fraction, kl (the high-quality histogram), modes_expected and
    modes_expected_std (the modes an exact sampler with the same high-quality samples covers:
    mean, std), kl_exact (the mean KL of an exact sampler with as many high-quality samples),
    verdict and verdict_reasons (the report's), verdict_rules ("modes" for a
    modes-only report, "full" with the feature rules) and, for classifier references,
    modes_covered_all and kl_all (every sample by its argmax mode: the Stacked-MNIST papers'
    count).

    A full report adds its feature numbers (feature_numbers): coverage against the coverage
    of identical distributions, and the near-duplicate share."""
    numbers = {
        "modes_covered": report["modes"]["covered"],
        "modes_total": report["modes"]["total"],
        "high_quality_fraction": report["high_quality_fraction"],
        "kl": report["kl"],
        "modes_expected": report["expected_covered_same_quality"],
        "modes_expected_std": report["expected_covered_same_quality_std"],
        "verdict": report["verdict"]["status"],
        "verdict_reasons": report["verdict"]["reasons"],
        "verdict_rules": "full" if "features" in report else "modes",
        "kl_exact": report["kl_expected_ideal"],  # an exact sampler's, as many high-quality
    }
    numbers |= feature_numbers(report)
    every = report.get("all_samples")
    if every is not None:
        numbers |= {"modes_covered_all": every["covered"], "kl_all": every["kl"]}
    if "classes" in report:  # a conditional GAN: how many classes are healthy on their own
        numbers["classes_healthy"] = report["classes"]["healthy"]
    return numbers


def feature_numbers(report: dict[str, Any]) -> dict[str, Any]:
    """A full report's k-NN numbers, {} for a modes-only one: coverage (Naeem et al. 2020),
    coverage_identical (what two identical distributions of these sizes score: the verdict's
    yardstick), coverage_ratio (coverage / coverage_identical) and near_duplicate_fraction."""
    manifold = report.get("features", {}).get("manifold")
    if manifold is None:
        return {}
    coverage, identical = manifold["coverage"], manifold["coverage_expected_identical"]
    return {
        "coverage": coverage,
        "coverage_identical": identical,
        "coverage_ratio": coverage / identical if identical else None,
        "near_duplicate_fraction": report["duplicates"]["near_fraction"],
    }


def papers_rule(samples: np.ndarray, dataset: Any) -> dict[str, Any]:
    """Where the dataset's protocol radius is not the papers' (veegan1200: 28.08 std against
    their 10), the same samples counted by the papers' radius: {"papers_rule":
    {"high_quality_stds", "modes_covered", "high_quality_fraction"}}; {} otherwise.
    dataset: the run's (a GaussianMixture, an ImageDataset, which has no such radius, or a
    WeightedPool, which answers for the dataset it reweights)."""
    stds = getattr(dataset, "papers_high_quality_stds", None)
    if stds is None:
        return {}
    reference = Reference.from_spec(dataset.reference_spec() | {"high_quality_stds": stds})
    counted = mode_metrics(np.asarray(samples, dtype=np.float64), reference)
    return {
        "papers_rule": {
            "high_quality_stds": stds,
            "modes_covered": counted["covered"],
            "high_quality_fraction": counted["high_quality_count"] / len(samples),
        }
    }
