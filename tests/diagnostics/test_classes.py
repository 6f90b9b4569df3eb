"""Class-conditional models' labels (lab/conditioning.py) and the report's classes section
(lab/diagnostics/classes.py): each class judged against its own modes."""

import numpy as np
import pytest
import torch

from lab.conditioning import (
    LabelChoice,
    check_labels,
    class_modes,
    class_weights,
    drawn_labels,
    label_generator,
)
from lab.diagnostics import diagnose
from lab.diagnostics.classes import Classes
from lab.noise import seeded_generator
from trainer.datasets import get_dataset


def test_classes_split_the_modes_in_order():
    assert class_modes(8, 4) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    assert class_modes(1000, 10)[3] == range(300, 400)
    with pytest.raises(ValueError, match="do not split 8 modes evenly"):
        class_modes(8, 3)
    assert class_weights([0.1, 0.3, 0.2, 0.4], 2) == pytest.approx([0.4, 0.6])


def test_drawn_labels_follow_the_mix_and_keep_their_prefix():
    labels = drawn_labels([0.5, 0.25, 0.25, 0.0], 20_000, 3)
    shares = np.bincount(labels, minlength=4) / labels.size
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.25, 0.0], atol=0.015)
    assert np.array_equal(drawn_labels([0.5, 0.25, 0.25, 0.0], 100, 3), labels[:100])
    # their own stream: not the latents' PCG64(seed)
    assert label_generator(3).random() != seeded_generator(3).random()


def test_a_label_choice_is_explicit_labels_one_label_a_mix_or_the_cards_weights():
    weights = [0.25] * 4
    assert LabelChoice(labels=2).draw(weights, 3, 0).tolist() == [2, 2, 2]
    assert LabelChoice(labels=2).echo() == {"labels": 2}
    assert LabelChoice(labels=(0, 3, 1)).draw(weights, 3, 0).tolist() == [0, 3, 1]
    assert LabelChoice(mix=(0, 0, 0, 1)).draw(weights, 5, 9).tolist() == [3] * 5
    assert np.array_equal(LabelChoice().draw(weights, 50, 9), drawn_labels(weights, 50, 9))
    with pytest.raises(ValueError, match="label 1 is 4"):
        check_labels(np.array([0, 4]), 4)


def test_each_class_is_judged_on_its_own_modes():
    """ring8 in 4 classes of 2 modes: class 0 covers both its modes, class 1 only one (the
    other collapsed away), class 2 puts half its samples on class 3's modes, class 3 has none."""
    ring = get_dataset("ring8").reference_spec()
    centres, std = np.asarray(ring["centres"]), ring["std"]
    rng = np.random.default_rng(0)
    plan = {0: [0, 1] * 100, 1: [2] * 200, 2: [4, 5] * 50 + [6] * 100}
    modes = np.concatenate([plan[k] for k in (0, 1, 2)])
    labels = np.repeat([0, 1, 2], 200)
    samples = centres[modes] + std * 0.5 * rng.standard_normal((modes.size, 2))
    report = diagnose(samples, ring, "ring8", classes=Classes(4, labels))
    section = report["classes"]
    first, second, third, fourth = section["per_class"]
    assert section["count"] == 4 and section["healthy"] == 2
    assert first["modes"] == {"total": 2, "covered": 2, "missing": [], "starved": []}
    assert first["verdict"] == "healthy" and first["on_class_fraction"] == 1.0
    assert second["modes"]["covered"] == 1 and second["modes"]["missing"] == [3]
    assert second["verdict"] == "collapsed"
    assert third["on_class_fraction"] == pytest.approx(0.5)
    assert third["high_quality_fraction"] == pytest.approx(0.5)  # off-class samples do not count
    assert third["verdict"] == "healthy"  # its own modes are covered evenly ...
    assert "50.0% of its high-quality samples lie on its own modes" in third["reasons"][-1]
    assert fourth == {
        "class": 3,
        "n": 0,
        "modes": None,
        "high_quality_fraction": None,
        "verdict": None,
    }
    # the overall report still sees all 600 samples against the whole ring
    assert report["n_samples"] == 600 and report["modes"]["covered"] == 6


def test_a_class_on_one_point_is_collapsed_though_it_covers_its_mode():
    """grid25, a class per mode, 5,000 samples (every class past DUPLICATE_MIN_ROWS): exact
    draws are healthy in every class; samples that ignore z
    (each class on one point near its centre) cover every mode, yet every class collapsed."""
    dataset = get_dataset("grid25")
    spec = dataset.reference_spec()
    points, modes = dataset.sample_with_modes(5000, torch.Generator().manual_seed(0))
    labels = modes.numpy()
    exact = diagnose(points.numpy().astype(np.float64), spec, "grid25", classes=Classes(25, labels))
    assert exact["classes"]["healthy"] == 25
    centres = np.asarray(spec["centres"])
    jitter = 1e-6 * np.random.default_rng(0).standard_normal((labels.size, 2))
    ignored = diagnose(centres[labels] + jitter, spec, "grid25", classes=Classes(25, labels))
    assert ignored["modes"]["covered"] == 25 and ignored["classes"]["healthy"] == 0
    entry = ignored["classes"]["per_class"][0]
    assert entry["modes"]["covered"] == 1 and entry["verdict"] == "collapsed"
    assert entry["duplicates"]["near_fraction"] == 1.0
    assert "near-identical outputs" in entry["reasons"][0]


def test_a_small_single_mode_class_is_inconclusive_not_healthy():
    dataset = get_dataset("grid25")
    points, modes = dataset.sample_with_modes(2500, torch.Generator().manual_seed(1))
    labels = modes.numpy()
    report = diagnose(
        points.numpy().astype(np.float64),
        dataset.reference_spec(),
        "grid25",
        classes=Classes(25, labels),
    )
    for entry in report["classes"]["per_class"]:
        small = entry["n"] < 100
        assert entry["verdict"] == ("inconclusive" if small else "healthy"), entry
    assert 0 < report["classes"]["healthy"] < 25
