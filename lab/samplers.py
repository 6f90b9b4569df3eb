"""EDM samplers (Karras et al. 2022, Algorithms 1 and 2) in plain numpy.

A sampler integrates the probability-flow ODE dx/dt = (x - D(x, t)) / t from t_0 = sigma_max
down to t_N = 0 over the time steps of Eq. 5, calling a denoiser D (an onnxruntime session in
the service, the torch network in the trainer: any `DenoiseFunction`). Euler costs N network
evaluations; Heun corrects every step but the last (where t_N = 0) and costs 2N - 1.
Optional "churn" (Algorithm 2) adds fresh noise before each step with t in [S_tmin, S_tmax],
drawn from the caller's seeded generator, so a seed still fixes the samples.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# D(x [batch, *shape] float32, sigma [batch] float32) -> denoised [batch, *shape] float32
DenoiseFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
SAMPLERS = ("euler", "heun")
MAX_CHURN = 100.0  # largest S_churn a request may ask for; gamma saturates at sqrt(2) - 1 anyway


@dataclass(frozen=True)
class Churn:
    """Algorithm 2's stochasticity: S_churn (0 = deterministic), S_tmin, S_tmax, S_noise."""

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0

    def gamma(self, t: float, steps: int) -> float:
        """gamma_i = min(S_churn / N, sqrt(2) - 1) when S_tmin <= t_i <= S_tmax, else 0."""
        if self.s_churn > 0 and self.s_tmin <= t <= self.s_tmax:
            return min(self.s_churn / steps, math.sqrt(2.0) - 1.0)
        return 0.0


NO_CHURN = Churn()  # Algorithm 1: deterministic


def time_steps(steps: int, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """Eq. 5: t_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
    for i < N, and t_N = 0: [steps + 1] float64, decreasing. One step is [sigma_max, 0]."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    fraction = np.arange(steps, dtype=np.float64) / max(steps - 1, 1)
    inverse_max, inverse_min = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    t = (inverse_max + fraction * (inverse_min - inverse_max)) ** rho
    return np.append(t, 0.0)


def network_evaluations(steps: int, sampler: str) -> int:
    """DenoiseFunction calls of one trajectory: N for Euler, 2N - 1 for Heun."""
    check_sampler(sampler)
    return steps if sampler == "euler" else 2 * steps - 1


def check_sampler(sampler: str) -> None:
    """ValueError unless `sampler` is one of SAMPLERS."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")


def denoise_at(denoise: DenoiseFunction, x: np.ndarray, t: float) -> np.ndarray:
    """D(x, t) with t broadcast to a per-sample float32 vector; float64 out."""
    sigma = np.full(len(x), t, dtype=np.float32)
    return np.asarray(denoise(x.astype(np.float32), sigma), dtype=np.float64)


@dataclass(frozen=True)
class Step:
    """One step of a trajectory: from t_cur, raised to t_hat by churn, down to t_next.

    noise_scale: sqrt(t_hat^2 - t_cur^2), the churn noise's factor (0 without churn).
    heun: whether the step takes Heun's second-order correction (never when t_next = 0).
    """

    t_cur: float
    t_hat: float
    t_next: float
    noise_scale: float
    heun: bool

    @property
    def churned(self) -> bool:
        return self.t_hat > self.t_cur


def plan(t: np.ndarray, sampler: str = "heun", churn: Churn = NO_CHURN) -> list[Step]:
    """The steps of Algorithms 1 and 2 over time steps t [N + 1] (time_steps)."""
    check_sampler(sampler)
    steps = []
    for t_cur, t_next in zip(t[:-1].tolist(), t[1:].tolist(), strict=True):
        gamma = churn.gamma(t_cur, len(t) - 1)
        t_hat = t_cur + gamma * t_cur  # Algorithm 2, lines 5-6: raise the noise level
        scale = math.sqrt(t_hat**2 - t_cur**2) if gamma > 0 else 0.0
        steps.append(Step(t_cur, t_hat, t_next, scale, sampler == "heun" and t_next > 0))
    return steps


def churn_noise(churn: Churn, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """S_noise * eps, eps ~ N(0, I) float32 [*shape] from rng: a churned step's fresh noise."""
    return churn.s_noise * rng.standard_normal(shape, dtype=np.float32)


def sample(
    denoise: DenoiseFunction,
    x: np.ndarray,
    t: np.ndarray,
    sampler: str = "heun",
    churn: Churn = NO_CHURN,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Integrate from x = x_0 ~ N(0, t_0^2 I) [batch, *shape] over time steps t [N + 1]
    (time_steps) with Euler or Heun; the samples [batch, *shape] float64.

    rng draws the churn noise (needed only when churn.s_churn > 0).
    """
    x = np.asarray(x, dtype=np.float64)
    for step in plan(t, sampler, churn):
        if step.churned:
            x = x + step.noise_scale * churn_noise(churn, x.shape, rng)
        d_cur = (x - denoise_at(denoise, x, step.t_hat)) / step.t_hat  # Euler step (lines 7-8)
        x_next = x + (step.t_next - step.t_hat) * d_cur
        if step.heun:  # 2nd-order correction (lines 9-11)
            d_prime = (x_next - denoise_at(denoise, x_next, step.t_next)) / step.t_next
            x_next = x + (step.t_next - step.t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
    return x
