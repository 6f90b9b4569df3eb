"""The 2-D Gaussian-mixture collapse benchmarks, registered by short name.

ring8 and grid25 follow the geometry of the PacGAN (Lin et al. 2018) and VEEGAN (Srivastava et
al. 2017) experiments. Each dataset is also the analytic reference the diagnostics compare
against (`reference_spec`), so the trainer and the service agree on the modes.
"""

import math
from dataclasses import dataclass

import torch

from trainer.datasets.registry import DATASETS


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """Isotropic Gaussian mixture: mode k is N(centres[k], std^2 I) with probability weights[k].

    centres: [K, dim] float64 (kept in double so the reference card holds exact centres).
    std: per-axis standard deviation of every mode (same units as the centres).
    weights: [K] float64, non-negative, summing to 1.
    """

    name: str
    centres: torch.Tensor
    std: float
    weights: torch.Tensor

    @property
    def dim(self) -> int:
        """Dimension of a sample."""
        return int(self.centres.shape[1])

    @property
    def num_modes(self) -> int:
        """Number of mixture components K."""
        return int(self.centres.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw n points, shape [n, dim] float32, using only `generator` (no global RNG)."""
        modes = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.centres[modes] + self.std * noise).to(torch.float32)

    def reference_spec(self) -> dict:
        """The card's `reference` object (plain Python numbers), see card.schema.json."""
        return {
            "type": "gaussian_mixture",
            "dim": self.dim,
            "centres": [[float(v) for v in row] for row in self.centres.tolist()],
            "std": float(self.std),
            "weights": [float(w) for w in self.weights.tolist()],
        }


def equal_weights(num_modes: int) -> torch.Tensor:
    """Uniform mode weights, shape [num_modes] float64."""
    return torch.full((num_modes,), 1.0 / num_modes, dtype=torch.float64)


@DATASETS.register("ring8")
def ring8() -> GaussianMixture:
    """8 Gaussians on the unit circle at angles 2*pi*i/8, i = 0..7, std 0.01.

    The angles exclude the endpoint: `linspace(0, 2*pi, 8)`, common in public code, puts
    modes 0 and 7 on top of each other.
    """
    angles = [2.0 * math.pi * i / 8 for i in range(8)]
    centres = torch.tensor([[math.cos(a), math.sin(a)] for a in angles], dtype=torch.float64)
    return GaussianMixture("ring8", centres, 0.01, equal_weights(8))


@DATASETS.register("grid25")
def grid25() -> GaussianMixture:
    """25 Gaussians at {-4, -2, 0, 2, 4}^2 (row-major: x outer, y inner), std 0.05."""
    values = [-4.0, -2.0, 0.0, 2.0, 4.0]
    centres = torch.tensor([[x, y] for x in values for y in values], dtype=torch.float64)
    return GaussianMixture("grid25", centres, 0.05, equal_weights(25))
