"""bench.stacked_kl: KL against the uniform stacks splits into the channels' marginals and TC."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.stacked_kl import SAMPLES, SEED, exact_split, kl_uniform, source_images, split_kl
from trainer.config import TrainConfig
from trainer.training_loop import restore, training_loop


def test_kl_uniform_of_a_point_mass_and_of_an_even_histogram():
    assert kl_uniform(np.array([5, 0, 0, 0])) == pytest.approx(np.log(4))
    assert kl_uniform(np.array([3, 3, 3, 3])) == pytest.approx(0.0)


def test_independent_channels_put_the_whole_kl_in_the_marginals():
    # channel 0 always 7, channel 1 even over 0..9: KL = log 10 + 0, TC = 0
    digits = np.stack([np.full(100, 7), np.arange(100) % 10], axis=1)
    total, marginals = split_kl(digits)
    assert marginals == pytest.approx([np.log(10), 0.0])
    assert total == pytest.approx(sum(marginals))


def test_dependent_channels_put_it_in_the_total_correlation():
    # both channels even over 0..9 but always equal: 10 of 100 stacks, TC = log 10
    digits = np.stack([np.arange(100) % 10] * 2, axis=1)
    total, marginals = split_kl(digits)
    assert marginals == pytest.approx([0.0, 0.0])
    assert total == pytest.approx(np.log(10))


def test_the_split_is_exact_on_any_histogram():
    digits = np.random.default_rng(3).integers(0, 4, size=(500, 3)) * 2  # digits 0, 2, 4, 6
    total, marginals = split_kl(digits)
    counts = np.bincount(digits @ np.array([100, 10, 1]), minlength=1000)
    q = counts[counts > 0] / counts.sum()
    assert total == pytest.approx(float(np.sum(q * np.log(q * 1000))))
    assert total - sum(marginals) >= -1e-12  # TC is never negative


def test_an_exact_sampler_scores_about_k_minus_1_over_2n():
    kl, marginal = exact_split(26_000, 3)
    assert kl == pytest.approx(999 / (2 * 26_000), rel=0.1)
    assert marginal == pytest.approx(3 * 9 / (2 * 26_000), rel=0.5)


@pytest.fixture(scope="module")
def conditional_run(tiny_image_config: TrainConfig, tmp_path_factory) -> Path:
    """A 4-step class-conditional DCGAN run on stacked digits (shared, read-only)."""
    config = replace(tiny_image_config, steps=4, eval_every=0, snapshot_every=0, classes=10)
    run_dir = tmp_path_factory.mktemp("run")
    training_loop(config, run_dir, progress=False)
    return run_dir


def test_a_run_folder_is_drawn_as_its_export_serves_it(conditional_run):
    state = restore(conditional_run)
    images = source_images(str(conditional_run), "stacked-digits")
    assert images.shape == (SAMPLES, 3, 8, 8)
    np.testing.assert_array_equal(images[:64], state.samples(SAMPLES, SEED)[:64])


def test_a_run_on_another_dataset_is_refused(conditional_run):
    with pytest.raises(SystemExit, match="trained on 'stacked-digits', not 'digits'"):
        source_images(str(conditional_run), "digits")
