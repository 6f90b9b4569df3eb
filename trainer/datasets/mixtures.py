"""The 2-D Gaussian-mixture collapse benchmarks, registered by short name.

ring8 and grid25 follow the geometry of the PacGAN (Lin et al. 2018) and VEEGAN (Srivastava et
al. 2017) experiments; grid100 (many modes) and grid25-rare (rare modes) extend them where
methods still fail. Each dataset is also the analytic reference the diagnostics compare against
(`reference_spec`), so the trainer and the service agree on the modes.
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

    def sample_with_modes(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n points [n, dim] float32 and their modes [n] int64, using only `generator`."""
        modes = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.centres[modes] + self.std * noise).to(torch.float32), modes

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw n points, shape [n, dim] float32, using only `generator` (no global RNG)."""
        return self.sample_with_modes(n, generator)[0]

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
    return GaussianMixture("grid25", grid_centres(5), 0.05, equal_weights(25))


def grid_centres(side: int, spacing: float = 2.0) -> torch.Tensor:
    """side x side centres, spacing apart and centred on 0 (row-major: x outer, y inner):
    [side^2, 2] float64. side 5 gives grid25's {-4, -2, 0, 2, 4}^2."""
    values = [spacing * (i - (side - 1) / 2) for i in range(side)]
    return torch.tensor([[x, y] for x in values for y in values], dtype=torch.float64)


@DATASETS.register("grid100")
def grid100() -> GaussianMixture:
    """100 Gaussians at {-9, -7, ..., 9}^2 (row-major), std 0.05: grid25's spacing and std on a
    10 x 10 grid (many modes)."""
    return GaussianMixture("grid100", grid_centres(10), 0.05, equal_weights(100))


RARE_MODES = (0, 4, 12, 20, 24)  # grid25-rare: the four corners and the centre
RARE_WEIGHT = 0.002  # each rare mode's share of the mass


@DATASETS.register("grid25-rare")
def grid25_rare() -> GaussianMixture:
    """grid25's 25 Gaussians with unequal weights: the four corners and the centre (RARE_MODES)
    hold 0.2% of the mass each, the other 20 modes 4.95% each.

    At the protocol's 10,000 samples (trainer.diagnose.DIAGNOSTICS_SAMPLES) an exact sampler
    misses a given rare mode with probability 0.998^10000 = 2e-9 (any of the five: 1e-8).
    """
    weights = torch.full((25,), (1.0 - RARE_WEIGHT * len(RARE_MODES)) / 20, dtype=torch.float64)
    weights[list(RARE_MODES)] = RARE_WEIGHT
    return GaussianMixture("grid25-rare", grid_centres(5), 0.05, weights)
