"""lab.samplers: EDM time steps, Euler and Heun, churn; lab.sampling.score_samples."""

import numpy as np
import pytest

from lab.noise import gaussian_latents
from lab.samplers import Churn, network_evaluations, sample, time_steps
from lab.sampling import ScoreSpec, score_samples

DATA_STD = 0.5


def gaussian_denoiser(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The exact D for data ~ N(0, DATA_STD^2 I): E[y | y + n = x] = s^2 / (s^2 + sigma^2) x."""
    shrink = DATA_STD**2 / (DATA_STD**2 + sigma.astype(np.float64) ** 2)
    return (shrink[:, None] * x).astype(np.float32)


class CountingDenoiser:
    """gaussian_denoiser that counts its calls and records the batch sizes it sees."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        assert x.dtype == np.float32 and sigma.dtype == np.float32 and sigma.shape == (len(x),)
        self.calls += 1
        return gaussian_denoiser(x, sigma)


SPEC = ScoreSpec(sample_shape=(2,), sigma_min=0.002, sigma_max=10.0, rho=7.0, data_scale=0.25)


def test_time_steps_follow_eq_5():
    t = time_steps(18, 0.002, 80.0, 7.0)
    assert t.shape == (19,) and t[0] == pytest.approx(80.0) and t[17] == pytest.approx(0.002)
    assert t[18] == 0 and np.all(np.diff(t) < 0)
    i = 5
    expected = (80.0 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    assert t[i] == pytest.approx(expected, rel=1e-12)
    assert list(time_steps(1, 0.002, 80.0, 7.0)) == [80.0, 0.0]


@pytest.mark.parametrize(("sampler", "steps", "expected"), [("euler", 18, 18), ("heun", 18, 35)])
def test_network_evaluations_are_counted(sampler, steps, expected):
    counter = CountingDenoiser()
    x = gaussian_latents(16, 2, 0) * 10.0
    sample(counter, x, time_steps(steps, 0.002, 10.0, 7.0), sampler)
    assert counter.calls == expected == network_evaluations(steps, sampler)


def test_exact_denoiser_recovers_the_data_std():
    """Integrating the exact ODE of N(0, s^2) maps N(0, s^2 + sigma_max^2) onto N(0, s^2)."""
    x = gaussian_latents(20_000, 2, 1).astype(np.float64) * np.sqrt(10.0**2 + DATA_STD**2)
    out = sample(gaussian_denoiser, x, time_steps(64, 0.002, 10.0, 7.0), "heun")
    assert out.std() == pytest.approx(DATA_STD, rel=0.01)


@pytest.mark.parametrize(("sampler", "order"), [("euler", 1), ("heun", 2)])
def test_samplers_converge_at_their_order(sampler, order):
    """The ODE of N(0, s^2) is linear: x(0) = x(T) s / sqrt(s^2 + T^2) exactly; doubling the
    steps divides Euler's error by ~2 and Heun's by ~4."""
    x = gaussian_latents(100, 2, 2).astype(np.float64) * 10.0
    exact = x * DATA_STD / np.sqrt(DATA_STD**2 + 10.0**2)
    error = [
        np.abs(sample(gaussian_denoiser, x, time_steps(n, 0.002, 10.0, 7.0), sampler) - exact).max()
        for n in (32, 64)
    ]
    assert error[0] / error[1] == pytest.approx(2**order, rel=0.25)


@pytest.mark.parametrize("churn", [Churn(), Churn(s_churn=10.0)])
def test_same_seed_same_samples(churn):
    first, again = (score_samples(gaussian_denoiser, SPEC, 50, 7, 12, "heun", churn) for _ in "ab")
    other = score_samples(gaussian_denoiser, SPEC, 50, 8, 12, "heun", churn)
    assert first.dtype == np.float32 and first.shape == (50, 2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_churn_changes_the_samples():
    plain = score_samples(gaussian_denoiser, SPEC, 50, 7, 12, "heun")
    churned = score_samples(gaussian_denoiser, SPEC, 50, 7, 12, "heun", Churn(s_churn=10.0))
    assert not np.array_equal(plain, churned)


def test_initial_noise_is_the_latent_stream_times_sigma_max_over_data_scale():
    """With D(x) = x the sampler never moves, so the samples are x_0 / data_scale, where
    x_0 = sigma_max * gaussian_latents(n, dim, seed)."""
    samples = score_samples(lambda x, sigma: x, SPEC, 9, 3, 1, "euler")
    x_0 = gaussian_latents(9, 2, 3).astype(np.float64) * SPEC.sigma_max
    np.testing.assert_allclose(samples, x_0 / SPEC.data_scale, rtol=1e-6)


def test_unknown_sampler_is_a_value_error():
    with pytest.raises(ValueError, match="unknown sampler"):
        network_evaluations(18, "dpm")
