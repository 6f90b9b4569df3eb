"""Dataset geometry (the PacGAN/VEEGAN mixtures) and sampling."""

import itertools
import math

import pytest
import torch

from trainer.datasets import get_dataset


def pairwise_distances(points: torch.Tensor) -> torch.Tensor:
    """Distances between distinct rows, shape [K*(K-1)/2]."""
    return torch.stack([(a - b).norm() for a, b in itertools.combinations(points, 2)])


def test_ring8_centres_are_8_distinct_points_on_the_unit_circle():
    centres = get_dataset("ring8").centres
    assert centres.shape == (8, 2)
    torch.testing.assert_close(centres.norm(dim=1), torch.ones(8, dtype=torch.float64))
    angles = torch.atan2(centres[:, 1], centres[:, 0]) % (2 * math.pi)
    expected = torch.tensor([2 * math.pi * i / 8 for i in range(8)], dtype=torch.float64)
    torch.testing.assert_close(angles, expected)
    # neighbours are 2 sin(pi/8) ~ 0.765 apart; linspace(0, 2pi, 8) would give a 0 here
    assert pairwise_distances(centres).min().item() == pytest.approx(2 * math.sin(math.pi / 8))


def test_grid25_centres_are_the_5x5_grid_in_row_major_order():
    centres = get_dataset("grid25").centres
    values = [-4.0, -2.0, 0.0, 2.0, 4.0]
    expected = torch.tensor([[x, y] for x in values for y in values], dtype=torch.float64)
    torch.testing.assert_close(centres, expected)
    assert pairwise_distances(centres).min().item() == pytest.approx(2.0)


@pytest.mark.parametrize("name, std, modes", [("ring8", 0.01, 8), ("grid25", 0.05, 25)])
def test_samples_have_the_mode_std_and_equal_weights(name, std, modes):
    dataset = get_dataset(name)
    samples = dataset.sample(20_000, torch.Generator().manual_seed(0))
    assert samples.shape == (20_000, 2) and samples.dtype == torch.float32
    distances = torch.cdist(samples.double(), dataset.centres)
    nearest = distances.argmin(dim=1)
    residual = samples.double() - dataset.centres[nearest]
    assert residual.std().item() == pytest.approx(std, rel=0.03)
    counts = torch.bincount(nearest, minlength=modes).double()
    assert counts.min().item() > 0.7 * 20_000 / modes


def test_same_generator_seed_gives_same_samples():
    dataset = get_dataset("grid25")
    first = dataset.sample(100, torch.Generator().manual_seed(7))
    second = dataset.sample(100, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_reference_spec_is_plain_json_matching_the_centres(name):
    dataset = get_dataset(name)
    spec = dataset.reference_spec()
    assert spec["type"] == "gaussian_mixture" and spec["dim"] == 2
    assert spec["centres"] == dataset.centres.tolist()
    assert all(type(v) is float for row in spec["centres"] for v in row)
    assert type(spec["std"]) is float and spec["std"] == dataset.std
    assert spec["weights"] == [1 / dataset.num_modes] * dataset.num_modes
