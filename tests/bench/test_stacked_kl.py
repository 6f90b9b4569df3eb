"""bench.stacked_kl: KL against the uniform stacks splits into the channels' marginals and TC."""

import numpy as np
import pytest

from bench.stacked_kl import exact_split, kl_uniform, split_kl


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
