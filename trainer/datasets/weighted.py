"""A dataset reweighted: a fixed pool of its points, drawn by per-point weights.

AdaGAN (Tolstikhin et al. 2017, "AdaGAN: Boosting Generative Models", Algorithm 1) trains each
new member of a mixture of generators on the training points reweighted towards those the
mixture so far misses (trainer/boosting.py computes the weights). A TrainConfig's
`data_weights` names the file that holds them; the run then draws its real batches from the
pool instead of the dataset, and is still evaluated against the dataset's own reference.

The file is an .npz of `points` float32 [P, ...] (the pool: points of the dataset) and
`weights` float64 [P] (>= 0, summing to 1), written by write_pool.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class WeightedPool:
    """The points of `base` (a GaussianMixture or ImageDataset) in `points` [P, ...] float32,
    drawn with probability `weights` [P] (cumulative in `cumulative`, float64)."""

    base: Any
    points: torch.Tensor
    cumulative: torch.Tensor

    @classmethod
    def read(cls, path: str | Path, base: Any) -> "WeightedPool":
        """The pool of the file at path over dataset base; ValueError naming what is wrong."""
        points, weights = read_pool(path)
        if tuple(points.shape[1:]) != tuple(base.sample(1, torch.Generator()).shape[1:]):
            raise ValueError(
                f"{path}: points of shape {list(points.shape[1:])} are not {base.name}'s"
            )
        cumulative = torch.from_numpy(np.cumsum(weights))
        return cls(base, torch.from_numpy(points), cumulative / cumulative[-1])

    @property
    def name(self) -> str:
        return self.base.name  # the reference the run is evaluated against

    def __getattr__(self, attribute: str) -> Any:  # dim, num_modes, channels, reference_spec
        if attribute == "base":  # not set yet (a copy being built)
            raise AttributeError(attribute)
        return getattr(self.base, attribute)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points of the pool, each drawn by its weight with `generator` alone."""
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        rows = torch.searchsorted(self.cumulative, u, right=True).clamp_(max=len(self.points) - 1)
        return self.points[rows]

    def sample_with_modes(self, n: int, generator: torch.Generator):
        raise ValueError("a reweighted pool has no modes: data_weights needs classes 0")


def write_pool(path: Path, points: np.ndarray, weights: np.ndarray) -> Path:
    """The pool file: points float32 [P, ...], weights float64 [P] (normalised here)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or len(weights) != len(points) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError("weights must be [P] >= 0 with a positive sum, one per point")
    np.savez(path, points=np.asarray(points, np.float32), weights=weights / weights.sum())
    return path


def read_pool(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(points float32 [P, ...], weights float64 [P]) of a pool file; ValueError if it is not
    one (no pickled objects are loaded)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            points, weights = archive["points"], archive["weights"]
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"data_weights {str(path)!r}: not a pool file ({error})") from None
    if points.dtype != np.float32 or weights.dtype != np.float64 or weights.ndim != 1:
        raise ValueError(f"data_weights {str(path)!r}: points float32, weights float64 [P]")
    if len(points) != len(weights) or not np.all(weights >= 0) or not weights.sum() > 0:
        raise ValueError(f"data_weights {str(path)!r}: one weight >= 0 per point, sum > 0")
    return points, weights
