"""Seeded latent noise, shared by the service and the trainer's export.

The same seed must give the same samples everywhere (service, export-time diagnostics, tests),
so latents come from numpy's PCG64 stream, which is specified bit-for-bit across platforms.
"""

import numpy as np

MAX_SEED = 2**63 - 1


def gaussian_latents(n: int, dim: int, seed: int) -> np.ndarray:
    """Standard-normal latents z ~ N(0, I), shape [n, dim], float32, drawn from PCG64(seed)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.standard_normal((n, dim), dtype=np.float32)
