"""Seeded noise: every random number a model's samples depend on.

The same seed must give the same samples everywhere (service, export-time diagnostics, tests,
benchmarks), so all noise comes from numpy's PCG64 stream, which is specified bit-for-bit across
platforms: a GAN's latents z (standard normal, or the distribution an imported generator's card
declares: latents), and a score model's initial noise followed, when churn is on, by its churn
noise (lab.samplers).
"""

import secrets

import numpy as np

MAX_SEED = 2**63 - 1  # the largest seed accepted (seeds drawn before MAX_DRAWN_SEED still work)
# Seeds the service draws stay below 2^53: a JSON number is a double in JavaScript (and many
# other clients), exact only up to 2^53, and a rounded seed gives other samples.
MAX_DRAWN_SEED = 2**53 - 1


def seeded_generator(seed: int) -> np.random.Generator:
    """numpy's PCG64 generator for `seed` (0 .. MAX_SEED)."""
    return np.random.Generator(np.random.PCG64(seed))


def random_seed() -> int:
    """A fresh seed in 0 .. MAX_DRAWN_SEED, for requests that send none."""
    return secrets.randbelow(MAX_DRAWN_SEED + 1)


def gaussian_latents(n: int, dim: int, seed: int) -> np.ndarray:
    """Standard-normal latents z ~ N(0, I), shape [n, dim], float32, drawn from PCG64(seed)."""
    return seeded_generator(seed).standard_normal((n, dim), dtype=np.float32)


def uniform_latents(n: int, dim: int, seed: int, low: float, high: float) -> np.ndarray:
    """Uniform latents, shape [n, dim], float32: low + (high - low) * u in float32 arithmetic,
    u the first n * dim float32 uniforms on [0, 1) of PCG64(seed) (Generator.random), row by
    row. The float32 rounding may reach `high` itself, so the values lie in [low, high]."""
    u = seeded_generator(seed).random((n, dim), dtype=np.float32)
    return np.float32(low) + np.float32(high - low) * u


def latents(latent: dict, n: int, seed: int) -> np.ndarray:
    """n latents [n, latent["dim"]] float32 of a gan card's declared distribution
    (lab.cards.card_latent): "normal" is gaussian_latents; "uniform" is uniform_latents
    between latent["low"] and latent["high"]. ValueError for another distribution."""
    dim = latent["dim"]
    if latent["distribution"] == "normal":
        return gaussian_latents(n, dim, seed)
    if latent["distribution"] == "uniform":
        return uniform_latents(n, dim, seed, latent["low"], latent["high"])
    raise ValueError(f"unknown latent distribution {latent['distribution']!r}")


def categorical(weights, uniforms: np.ndarray) -> np.ndarray:
    """A seeded categorical draw: for each uniform u in [0, 1), the first index k whose
    cumulative weight w_0 + ... + w_k exceeds u (the last index when rounding leaves none),
    int64 [len(uniforms)]. The rule ensembles pick members by and conditional models classes."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    chosen = np.searchsorted(cumulative, uniforms, side="right")
    return np.minimum(chosen, len(cumulative) - 1).astype(np.int64)
