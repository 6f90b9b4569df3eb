"""GaussianMixture validation, blockwise nearest modes and the papers' counting protocol."""

import numpy as np
import pytest

from lab.diagnostics import DiagnosticsError, GaussianMixture
from lab.diagnostics.mixture import (
    expected_coverage_ideal,
    high_quality_probability,
    mode_metrics,
    nearest_modes,
)

VALID = {
    "type": "gaussian_mixture",
    "dim": 2,
    "centres": [[0, 0], [1, 0], [0, 1]],
    "std": 0.1,
    "weights": [1, 1, 2],
}


def test_from_spec_normalises_weights() -> None:
    mixture = GaussianMixture.from_spec(VALID)
    np.testing.assert_allclose(mixture.weights, [0.25, 0.25, 0.5])
    assert (mixture.centres.dtype, mixture.centres.shape, mixture.std) == (np.float64, (3, 2), 0.1)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"type": "classifier"}, "unsupported reference type"),
        ({"std": None}, "std"),
        ({"std": 0}, "std must be > 0"),
        ({"std": -0.1}, "std must be > 0"),
        ({"dim": 3}, "need \\[K >= 1, 3\\]"),
        ({"dim": True}, "dim must be a positive integer"),
        ({"centres": [[0, 0], [1]]}, "ragged"),
        ({"centres": [0, 1]}, "centres must have 2 dimension"),
        ({"centres": [[0, np.nan], [1, 0], [0, 1]]}, "NaN or Inf"),
        ({"weights": [1, 1]}, "3 centres but 2 weights"),
        ({"weights": [1, -1, 2]}, "weights must be >= 0"),
        ({"weights": [0, 0, 0]}, "positive sum"),
    ],
)
def test_from_spec_rejects_invalid(change: dict, message: str) -> None:
    with pytest.raises(DiagnosticsError, match=message):
        GaussianMixture.from_spec({**VALID, **change})


def test_from_spec_names_missing_keys() -> None:
    with pytest.raises(DiagnosticsError, match="lacks centres, weights"):
        GaussianMixture.from_spec({"type": "gaussian_mixture", "dim": 2, "std": 1.0})


@pytest.mark.parametrize("block_size", [1, 7, 4096])
def test_nearest_modes_equals_brute_force(block_size: int) -> None:
    rng = np.random.default_rng(3)
    samples, centres = rng.normal(size=(500, 3)) * 4, rng.normal(size=(13, 3)) * 4
    brute = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)
    index, distance = nearest_modes(samples, centres, block_size=block_size)
    assert index.dtype == np.int64 and distance.dtype == np.float64
    np.testing.assert_array_equal(index, np.argmin(brute, axis=1))
    np.testing.assert_allclose(distance, brute.min(axis=1), rtol=1e-12)


def test_nearest_modes_rejects_empty_blocks() -> None:
    with pytest.raises(ValueError, match="block_size"):
        nearest_modes(np.zeros((2, 2)), np.zeros((1, 2)), block_size=0)


@pytest.mark.parametrize("stds, high_quality", [(2.9, True), (2.9999, True), (3.0001, False)])
def test_high_quality_means_within_three_std(stds: float, high_quality: bool) -> None:
    mixture = GaussianMixture.from_spec(VALID)
    sample = np.array([[1.0, stds * 0.1]])  # offset from centre [1, 0], std 0.1
    metrics = mode_metrics(sample, mixture)
    assert bool(metrics["high_quality"][0]) is high_quality
    assert metrics["histogram"].tolist() == ([0, 1, 0] if high_quality else [0, 0, 0])


def test_mode_is_captured_by_its_nearest_high_quality_samples() -> None:
    mixture = GaussianMixture.from_spec(VALID)
    samples = np.array([[0.01, 0.0], [0.0, 0.02], [0.0, 1.0], [0.5, 0.5]])  # last: far from all
    metrics = mode_metrics(samples, mixture)
    assert metrics["histogram"].tolist() == [2, 0, 1]
    assert metrics["captured"].tolist() == [True, False, True]
    assert (metrics["covered"], metrics["high_quality_count"]) == (2, 3)


@pytest.mark.parametrize("dim, expected", [(1, 0.9973002039367398), (2, 1.0 - np.exp(-4.5))])
def test_high_quality_probability(dim: int, expected: float) -> None:
    assert high_quality_probability(dim) == pytest.approx(expected, rel=1e-12)


def test_expected_coverage_matches_monte_carlo(references: dict, draw) -> None:
    mixture = GaussianMixture.from_spec(references["grid25"])
    covered = [
        mode_metrics(draw(references["grid25"], 30, seed=seed), mixture)["covered"]
        for seed in range(200)
    ]
    mean, std = expected_coverage_ideal(mixture, 30)
    assert abs(np.mean(covered) - mean) < 4 * np.std(covered) / np.sqrt(len(covered))
    assert std == pytest.approx(np.std(covered), rel=0.2)


def test_a_mode_holding_all_the_weight_is_surely_covered_without_a_warning() -> None:
    """An uploaded classifier reference whose confident samples are all of one class has a
    weight of 1: log1p(-1) is -inf, and the mode is covered with certainty (it warned, an
    error under pytest)."""
    from lab.diagnostics.mixture import expected_coverage

    mean, std = expected_coverage(np.array([1.0, 0.0, 0.0]), 50)
    assert mean == 1.0 and std == 0.0


@pytest.mark.parametrize(
    "success",
    [[0.1] * 7, [0.002] * 5 + [0.0495] * 20, [0.3, 0.1, 0.3, 0.05, 0.1, 0.15], [0.6, 0.4, 0.0]],
)
@pytest.mark.parametrize("n_samples", [1, 7, 30, 400])
def test_modes_of_equal_chance_are_summed_as_one_term_with_the_same_variance(
    success, n_samples
) -> None:
    """expected_coverage groups equal s_k; its variance is the multinomial's sum over every
    pair of modes, written out here mode by mode."""
    from lab.diagnostics.mixture import expected_coverage

    s = np.asarray(success)
    missed = (1 - s) ** n_samples
    variance = float(np.sum(missed * (1 - missed)))
    for j in range(len(s)):
        for k in range(len(s)):
            if j != k:
                both = max(1 - s[j] - s[k], 0.0) ** n_samples
                variance += both - missed[j] * missed[k]
    mean, std = expected_coverage(s, n_samples)
    assert mean == pytest.approx(float(np.sum(1 - missed)), rel=1e-12)
    assert std**2 == pytest.approx(max(variance, 0.0), rel=1e-9, abs=1e-12)


HIGH_DIMENSIONAL = {
    "type": "gaussian_mixture",
    "dim": 6,
    "centres": [[0.0] * 6, [5.0] * 6],
    "std": 1.0,
    "weights": [1, 1],
    "noise_dims": 4,
    "high_quality_stds": 4.5,
}


def test_noise_dims_keep_the_other_axes_at_the_centre() -> None:
    mixture = GaussianMixture.from_spec(HIGH_DIMENSIONAL)
    draws = mixture.sample(4000, seed=0)
    assert set(np.unique(draws[:, 4:])) <= {0.0, 5.0}  # the constant axes
    np.testing.assert_array_equal(draws[:, 4], draws[:, 5])
    centred = draws[:, :4] - draws[:, 4:5]
    assert centred.std(axis=0) == pytest.approx([1.0] * 4, abs=0.05)


def test_a_reference_without_the_optional_keys_draws_as_before() -> None:
    """noise_dims absent: the draws are those of centres + std * N(0, I) from the same PCG64
    stream (the 2-D references' mixture draws, and so their reports, are unchanged)."""
    mixture = GaussianMixture.from_spec(VALID)
    rng = np.random.Generator(np.random.PCG64(7))
    modes = rng.choice(3, size=50, p=mixture.weights)
    expected = mixture.centres[modes] + 0.1 * rng.standard_normal((50, 2))
    np.testing.assert_array_equal(mixture.sample(50, seed=7), expected)


def test_the_radius_and_q_follow_high_quality_stds_and_the_noisy_axes() -> None:
    mixture = GaussianMixture.from_spec(HIGH_DIMENSIONAL)
    assert mixture.high_quality_radius == 4.5
    assert mixture.high_quality_probability() == high_quality_probability(4, 4.5)
    inside, outside = np.zeros((1, 6)), np.zeros((1, 6))
    inside[0, 0], outside[0, 0] = 4.49, 4.51
    assert mode_metrics(inside, mixture)["high_quality"].tolist() == [True]
    assert mode_metrics(outside, mixture)["high_quality"].tolist() == [False]
    draws = mixture.sample(20_000, seed=1)
    share = mode_metrics(draws, mixture)["high_quality"].mean()
    q = mixture.high_quality_probability()
    assert abs(share - q) < 4 * np.sqrt(q * (1 - q) / 20_000)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"noise_dims": 0}, "noise_dims must be an integer from 1 to dim \\(6\\)"),
        ({"noise_dims": 7}, "noise_dims must be an integer from 1 to dim"),
        ({"noise_dims": 2.0}, "noise_dims must be an integer"),
        ({"noise_dims": True}, "noise_dims must be an integer"),
        ({"high_quality_stds": 0}, "high_quality_stds must be finite and > 0"),
        ({"high_quality_stds": float("inf")}, "high_quality_stds must be finite and > 0"),
        ({"high_quality_stds": "3"}, "high_quality_stds must be a number"),
    ],
)
def test_from_spec_rejects_invalid_protocol_keys(change: dict, message: str) -> None:
    with pytest.raises(DiagnosticsError, match=message):
        GaussianMixture.from_spec({**HIGH_DIMENSIONAL, **change})
