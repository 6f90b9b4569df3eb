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


@pytest.mark.parametrize(
    "name, std, modes", [("ring8", 0.01, 8), ("grid25", 0.05, 25), ("grid100", 0.05, 100)]
)
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


def test_grid100_is_a_10x10_grid_with_grid25s_spacing():
    centres = get_dataset("grid100").centres
    values = [-9.0 + 2.0 * i for i in range(10)]
    expected = torch.tensor([[x, y] for x in values for y in values], dtype=torch.float64)
    torch.testing.assert_close(centres, expected)


def test_grid25_rare_puts_0_2_percent_on_the_corners_and_the_centre():
    rare, common = get_dataset("grid25-rare"), get_dataset("grid25")
    torch.testing.assert_close(rare.centres, common.centres)
    assert rare.std == common.std and rare.weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    corners_and_centre = [
        k
        for k, centre in enumerate(rare.centres.tolist())
        if centre in ([-4, -4], [-4, 4], [0, 0], [4, -4], [4, 4])
    ]
    assert torch.nonzero(rare.weights == 0.002).flatten().tolist() == corners_and_centre
    assert rare.weights.max().item() == pytest.approx(0.99 / 20)
    # the protocol's 10,000 samples miss any rare mode with probability < 1e-4
    assert 5 * (1 - 0.002) ** 10_000 < 1e-4
    draws = rare.sample(200_000, torch.Generator().manual_seed(0))
    nearest = torch.cdist(draws.double(), rare.centres).argmin(dim=1)
    shares = torch.bincount(nearest, minlength=25).double() / len(draws)
    torch.testing.assert_close(shares, rare.weights, atol=0.002, rtol=0.0)


def test_same_generator_seed_gives_same_samples():
    dataset = get_dataset("grid25")
    first = dataset.sample(100, torch.Generator().manual_seed(7))
    second = dataset.sample(100, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", ["ring8", "grid25", "grid100"])
def test_reference_spec_is_plain_json_matching_the_centres(name):
    dataset = get_dataset(name)
    spec = dataset.reference_spec()
    assert spec["type"] == "gaussian_mixture" and spec["dim"] == 2
    assert spec["centres"] == dataset.centres.tolist()
    assert all(type(v) is float for row in spec["centres"] for v in row)
    assert type(spec["std"]) is float and spec["std"] == dataset.std
    assert spec["weights"] == [1 / dataset.num_modes] * dataset.num_modes


def test_veegan1200_is_the_pacgan_authors_recipe():
    """VEEGAN1200DPackingMixture (fjxmlzn/PacGAN): mode k adds shift k to all 1200 axes,
    N(0, 1) noise on axes 0-699 only, uniform modes."""
    dataset = get_dataset("veegan1200")
    shifts = [-1.0, -0.5, 0.0, 0.5, -2.0, -2.5, 10.0, 0.25, -13.0, -5.5]
    assert dataset.centres.shape == (10, 1200)
    torch.testing.assert_close(
        dataset.centres, torch.tensor(shifts)[:, None].double().expand(10, 1200)
    )
    draws, modes = dataset.sample_with_modes(4000, torch.Generator().manual_seed(0))
    offsets = draws.double() - dataset.centres[modes]
    assert torch.all(offsets[:, 700:] == 0)
    assert offsets[:, :700].std().item() == pytest.approx(1.0, rel=0.01)
    counts = torch.bincount(modes, minlength=10)
    assert counts.min().item() > 0.8 * 400


def test_veegan1200_radius_keeps_the_2d_chance_of_high_quality():
    """P(chi2_700 <= r^2) = P(chi2_2 <= 9): an exact draw is high quality as often as in 2-D,
    where the papers' 10 std would exclude every draw (sqrt(chi2_700) is about 26.5)."""
    from lab.diagnostics import GaussianMixture as Reference
    from lab.diagnostics.mixture import high_quality_probability, mode_metrics

    dataset = get_dataset("veegan1200")
    assert dataset.high_quality_probability() == pytest.approx(1 - math.exp(-4.5), abs=1e-6)
    assert 28.0 < dataset.high_quality_stds < 28.2
    assert high_quality_probability(700, 10.0) < 1e-100
    spec = dataset.reference_spec()
    assert (spec["noise_dims"], spec["high_quality_stds"]) == (700, dataset.high_quality_stds)
    reference = Reference.from_spec(spec)
    metrics = mode_metrics(
        dataset.sample(5000, torch.Generator().manual_seed(1)).double().numpy(), reference
    )
    assert metrics["covered"] == 10
    assert abs(metrics["high_quality"].mean() - 0.98889) < 4 * math.sqrt(0.98889 * 0.0111 / 5000)


@pytest.mark.parametrize("name", ["ring8", "grid25", "grid100", "grid25-rare"])
def test_2d_reference_specs_carry_no_protocol_keys(name):
    assert set(get_dataset(name).reference_spec()) == {"type", "dim", "centres", "std", "weights"}


def test_papers_rule_counts_veegan1200_by_10_std_and_other_datasets_not_at_all():
    """Under the papers' 10 std an exact sampler covers nothing and the bare centres (no noise:
    every mode collapsed to a point) cover everything; the 2-D datasets add no such numbers."""
    from trainer.evaluation import papers_rule

    dataset = get_dataset("veegan1200")
    exact = dataset.sample(500, torch.Generator().manual_seed(0)).numpy()
    centres = dataset.centres.numpy()[[k % 10 for k in range(500)]]
    assert papers_rule(exact, dataset)["papers_rule"] == {
        "high_quality_stds": 10.0,
        "modes_covered": 0,
        "high_quality_fraction": 0.0,
    }
    assert papers_rule(centres, dataset)["papers_rule"]["modes_covered"] == 10
    assert papers_rule(exact[:, :2], get_dataset("ring8")) == {}
