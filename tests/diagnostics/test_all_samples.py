"""The report's `all_samples` section: every sample counted by its argmax mode (the
Stacked-MNIST papers' protocol), beside the confident-only histogram."""

import numpy as np
import pytest
from scipy.stats import entropy

from lab.diagnostics import diagnose_modes
from lab.diagnostics.classifier import argmax_histogram, classified_histogram
from lab.diagnostics.statistics import expected_kl_ideal
from tests.helpers import draw_mixture
from trainer.datasets import get_dataset

STACKED = {
    "type": "classifier",
    "channels": 3,
    "n_modes": 1000,
    "weights": [1e-3] * 1000,
    "input": {"name": "images", "dtype": "float32", "shape": [-1, 1, 8, 8]},
}


def one_hot_probabilities(digits: np.ndarray, confidence: float) -> np.ndarray:
    """probabilities [N, C, 10] whose argmax is `digits` [N, C] with top probability
    `confidence` per channel (the rest spread evenly)."""
    probabilities = np.full((*digits.shape, 10), (1.0 - confidence) / 9.0)
    np.put_along_axis(probabilities, digits[..., None], confidence, axis=-1)
    return probabilities


def modes_of(probabilities: np.ndarray) -> dict:
    images = np.zeros((probabilities.shape[0], 3, 8, 8))
    return diagnose_modes(images, STACKED, (probabilities, None))


def test_unconfident_samples_count_only_in_all_samples():
    digits = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    probabilities = np.concatenate(
        [one_hot_probabilities(digits[:1], 0.999), one_hot_probabilities(digits[1:], 0.5)]
    )
    assert classified_histogram(probabilities, STACKED).nonzero()[0].tolist() == [123]
    assert argmax_histogram(probabilities, STACKED).nonzero()[0].tolist() == [123, 456, 789]
    report = modes_of(probabilities)
    assert report["modes"]["covered"] == 1
    assert report["all_samples"]["covered"] == 3
    assert len(report["all_samples"]["missing"]) == 997


def test_all_confident_samples_give_the_same_numbers_both_ways():
    digits = np.random.default_rng(1).integers(0, 10, (500, 3))
    report = modes_of(one_hot_probabilities(digits, 0.9999))
    every = report["all_samples"]
    assert every["covered"] == report["modes"]["covered"]
    assert every["missing"] == report["modes"]["missing"]
    assert every["kl"] == pytest.approx(report["kl"], abs=1e-12)
    assert every["kl_expected_ideal"] == pytest.approx(report["kl_expected_ideal"], abs=1e-12)


def test_all_samples_kl_matches_scipy():
    rng = np.random.default_rng(2)
    digits = rng.integers(0, 10, (2000, 3))
    confidence = rng.uniform(0.4, 1.0, 1)[0]
    every = modes_of(one_hot_probabilities(digits, confidence))["all_samples"]
    counts = np.bincount(digits @ np.array([100, 10, 1]), minlength=1000)
    generated = counts / counts.sum()
    expected = entropy(generated, np.full(1000, 1e-3))  # scipy: sum p ln(p / q), 0 ln 0 = 0
    assert every["kl"] == pytest.approx(expected, rel=1e-9)


def test_an_exact_sampler_scores_the_papers_0_019_at_26000_samples():
    mean, std = expected_kl_ideal(np.full(1000, 1e-3), 26_000)
    assert mean == pytest.approx(0.0193, abs=2e-4)  # about (K - 1) / 2n; DESIGN.md
    assert 0 < std < 0.002


def test_mixture_references_have_no_all_samples_section():
    reference = get_dataset("ring8").reference_spec()
    report = diagnose_modes(draw_mixture(reference, 200, None), reference)
    assert report["all_samples"] is None


def test_a_classifier_cards_confidence_threshold_replaces_the_default():
    """Channels at 0.9995 each (product 0.9985) pass the default 0.99, not the 0.999 of a
    classifier card's confidence rule (merged into the spec by lab.cards.classifier_spec)."""
    probabilities = one_hot_probabilities(np.array([[1, 2, 3], [4, 5, 6]]), 0.9995)
    strict = {**STACKED, "confidence": {"type": "max_probability", "threshold": 0.999}}
    assert classified_histogram(probabilities, STACKED).sum() == 2
    assert classified_histogram(probabilities, strict).sum() == 0
    images = np.zeros((2, 3, 8, 8))
    report = diagnose_modes(images, strict, (probabilities, None))
    assert report["modes"]["covered"] == 0 and report["all_samples"]["covered"] == 2
