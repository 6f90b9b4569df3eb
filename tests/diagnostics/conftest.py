"""The 2-D collapse benchmarks as reference objects, and an exact sampler of chosen modes.

ring8: 8 Gaussians at angles 2 pi i / 8, i = 0..7 (endpoint excluded), radius 1, std 0.01;
grid25: centres {-4, -2, 0, 2, 4}^2 in row-major order (x outer, y inner), std 0.05.
Both with equal weights (the PacGAN / VEEGAN geometry).
"""

from collections.abc import Callable, Sequence

import numpy as np
import pytest

Sampler = Callable[..., np.ndarray]


def ring8_reference() -> dict:
    """The ring8 card's `reference` object."""
    angles = 2.0 * np.pi * np.arange(8) / 8
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return {
        "type": "gaussian_mixture",
        "dim": 2,
        "centres": centres.tolist(),
        "std": 0.01,
        "weights": [1.0] * 8,
    }


def grid25_reference() -> dict:
    """The grid25 card's `reference` object."""
    centres = [[x, y] for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)]
    return {
        "type": "gaussian_mixture",
        "dim": 2,
        "centres": centres,
        "std": 0.05,
        "weights": [1.0] * 25,
    }


@pytest.fixture
def references() -> dict[str, dict]:
    """Reference objects by benchmark name."""
    return {"ring8": ring8_reference(), "grid25": grid25_reference()}


@pytest.fixture
def draw() -> Sampler:
    """draw(reference, n, modes=None, seed=0): exact samples float64 [n, d] from `modes` only.

    Each sample picks one of `modes` (all by default) with probability proportional to its
    reference weight, then adds N(0, std^2 I) noise: an exact sampler of the sub-mixture.
    """

    def sample(
        reference: dict, n: int, modes: Sequence[int] | None = None, seed: int = 0
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        centres = np.asarray(reference["centres"], dtype=np.float64)
        weights = np.asarray(reference["weights"], dtype=np.float64)
        chosen = np.arange(len(centres)) if modes is None else np.asarray(modes)
        picks = rng.choice(chosen, size=n, p=weights[chosen] / weights[chosen].sum())
        noise = rng.standard_normal((n, centres.shape[1]))
        return centres[picks] + reference["std"] * noise

    return sample
