"""The Gaussian-mixture collapse benchmarks, registered by short name.

ring8 and grid25 follow the geometry of the PacGAN (Lin et al. 2018) and VEEGAN (Srivastava et
al. 2017) experiments; grid100 (many modes), grid25-rare (rare modes) and veegan1200 (VEEGAN's
1200-D mixture: high dimension) extend them where methods still fail. Each dataset is also the
analytic reference the diagnostics compare against (`reference_spec`), so the trainer and the
service agree on the modes.
"""

import math
from dataclasses import dataclass

import torch

from lab.diagnostics.mixture import HIGH_QUALITY_STDS, high_quality_probability
from trainer.datasets.registry import DATASETS


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """Isotropic Gaussian mixture: mode k is N(centres[k], std^2 I) with probability weights[k].

    centres: [K, dim] float64 (kept in double so the reference card holds exact centres).
    std: per-axis standard deviation of every mode (same units as the centres).
    weights: [K] float64, non-negative, summing to 1.
    noise_dims: only axes 0..noise_dims-1 carry the noise, the others hold the centre's value
    (None: every axis). high_quality_stds: the protocol's high-quality radius in std;
    papers_high_quality_stds: the papers' own radius where it differs (the table records both).
    """

    name: str
    centres: torch.Tensor
    std: float
    weights: torch.Tensor
    noise_dims: int | None = None
    high_quality_stds: float = HIGH_QUALITY_STDS
    papers_high_quality_stds: float | None = None  # set where the papers' radius differs

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
        noise = torch.randn(n, self.noisy_axes, generator=generator, dtype=torch.float64)
        points = self.centres[modes]
        points[:, : self.noisy_axes] += self.std * noise
        return points.to(torch.float32), modes

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
        } | self.protocol_spec()

    def protocol_spec(self) -> dict:
        """The reference's optional keys, present only where they differ from the defaults (so
        the 2-D mixtures' cards are unchanged): noise_dims and high_quality_stds."""
        spec: dict = {}
        if self.noise_dims is not None:
            spec["noise_dims"] = self.noise_dims
        if self.high_quality_stds != HIGH_QUALITY_STDS:
            spec["high_quality_stds"] = self.high_quality_stds
        return spec

    @property
    def noisy_axes(self) -> int:
        """The axes that carry the noise: noise_dims, or every axis."""
        return self.dim if self.noise_dims is None else self.noise_dims

    def high_quality_probability(self) -> float:
        """q: the chance that an exact draw lies within the high-quality radius of its centre."""
        return high_quality_probability(self.noisy_axes, self.high_quality_stds)


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


# VEEGAN's 1200-D mixture (Srivastava et al. 2017, Table 1) as the PacGAN authors' code builds it
# (fjxmlzn/PacGAN, synthetic_data_experiments/PacGAN/pacgan/datasets.py, VEEGAN1200DPackingMixture):
# mode k adds MEANS[k] to every one of the 1200 axes; axes 0-699 carry N(0, 1) noise, axes
# 700-1199 none; the modes are drawn uniformly.
VEEGAN1200_SHIFTS = (-1.0, -0.5, 0.0, 0.5, -2.0, -2.5, 10.0, 0.25, -13.0, -5.5)
VEEGAN1200_DIM = 1200
VEEGAN1200_NOISE_DIMS = 700
# The papers count a sample as high quality within 10 std of its nearest centre; an exact draw
# lies sqrt(chi2_700) ~ 26.5 std from its own, so under that rule an exact sampler scores 0 of
# 10 modes (P(chi2_700 <= 100) < 1e-100). The benchmark's radius instead keeps the 2-D rule's
# chance that an exact draw is high quality: P(chi2_700 <= r^2) = P(chi2_2 <= 9) = 0.98889.
VEEGAN1200_PAPERS_STDS = 10.0


def matching_radius(noisy_axes: int, target: float) -> float:
    """r (in std) with P(chi2_noisy_axes <= r^2) = target: bisected to 1e-12, then rounded
    to 1e-6 std (the value the reference card holds)."""
    low, high = 0.0, 10.0 * math.sqrt(noisy_axes) + 10.0
    while high - low > 1e-12:
        middle = (low + high) / 2
        if high_quality_probability(noisy_axes, middle) < target:
            low = middle
        else:
            high = middle
    return round(high, 6)


@DATASETS.register("veegan1200")
def veegan1200() -> GaussianMixture:
    """VEEGAN's 10 modes in 1200-D: centre k is VEEGAN1200_SHIFTS[k] on every axis, N(0, 1)
    noise on axes 0-699 only, equal weights; high quality within the radius (about 28.1 std)
    at which an exact draw is high quality as often as in 2-D (see VEEGAN1200_PAPERS_STDS)."""
    shifts = torch.tensor(VEEGAN1200_SHIFTS, dtype=torch.float64)
    centres = shifts[:, None].expand(len(shifts), VEEGAN1200_DIM).clone()
    radius = matching_radius(VEEGAN1200_NOISE_DIMS, high_quality_probability(2))
    return GaussianMixture(
        "veegan1200",
        centres,
        1.0,
        equal_weights(len(shifts)),
        VEEGAN1200_NOISE_DIMS,
        radius,
        VEEGAN1200_PAPERS_STDS,
    )
