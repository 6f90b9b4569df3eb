"""GAN losses: the WGAN-GP penalty, hinge values, and critic steps per generator step."""

import dataclasses

import pytest
import torch
from torch import nn

from trainer.losses import HingeLoss, WassersteinGPLoss, get_loss, gradient_penalty
from trainer.training_loop import build


def linear_critic(weight: list[float]) -> nn.Linear:
    """D(x) = w . x: its input gradient is w everywhere."""
    critic = nn.Linear(len(weight), 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weight]))
    return critic


def critic_logits(critic: nn.Module):
    return lambda x: critic(x).squeeze(-1)


@pytest.fixture
def batches() -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(0)
    return torch.randn(16, 2, generator=rng), torch.randn(16, 2, generator=rng)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic(batches):
    critic = critic_logits(linear_critic([0.6, 0.8]))  # ||w|| = 1: 1-Lipschitz, gradient norm 1
    penalty = gradient_penalty(critic, *batches, torch.Generator().manual_seed(1))
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("weight, expected", [([1.2, 1.6], 1.0), ([0.3, 0.4], 0.25)])
def test_gradient_penalty_is_positive_otherwise(batches, weight, expected):
    critic = critic_logits(linear_critic(weight))  # ||w|| = 2 or 0.5: (||w|| - 1)^2
    penalty = gradient_penalty(critic, *batches, torch.Generator().manual_seed(1))
    assert penalty.item() == pytest.approx(expected, rel=1e-5)


def test_wgan_gp_loss_adds_lambda_times_the_penalty(batches):
    real, fake = batches
    critic = critic_logits(linear_critic([1.2, 1.6]))
    loss = WassersteinGPLoss(gp_lambda=0.1).discriminator_loss(critic, real, fake)
    wasserstein = critic(fake).mean() - critic(real).mean()
    assert loss.item() == pytest.approx(wasserstein.item() + 0.1 * 1.0, rel=1e-5)


def test_hinge_values_on_known_logits():
    logits = {"real": torch.tensor([2.0, 0.5, -1.0]), "fake": torch.tensor([-2.0, 0.0, 1.0])}
    critic = lambda x: logits[x]  # noqa: E731  (a lookup stands in for D)
    loss = HingeLoss()
    # D: mean(relu(1 - [2, .5, -1])) + mean(relu(1 + [-2, 0, 1])) = 2.5/3 + 3/3
    assert loss.discriminator_loss(critic, "real", "fake").item() == pytest.approx(5.5 / 3)
    assert loss.generator_loss(critic, "fake").item() == pytest.approx(1.0 / 3)  # -mean(fake)


def test_get_loss_takes_gp_lambda_from_the_config(tiny_config):
    config = dataclasses.replace(tiny_config, loss="wgan-gp", gp_lambda=2.5)
    loss = get_loss(config.loss, config, torch.Generator())
    assert isinstance(loss, WassersteinGPLoss) and loss.gp_lambda == 2.5


def test_d_steps_does_that_many_d_updates_per_g_update(tiny_config):
    state = build(dataclasses.replace(tiny_config, loss="wgan-gp", d_steps=5))
    for _ in range(2):
        state.train_step()
    d_step = next(iter(state.optimizer_d.state.values()))["step"]
    g_step = next(iter(state.optimizer_g.state.values()))["step"]
    assert (int(d_step), int(g_step)) == (10, 2)
