"""GAN losses by short name. A loss is a small class with two methods (plus `from_config` for
its parameters), so WGAN-GP, hinge and the non-saturating objective plug in side by side.

A `Critic` is anything mapping D's input [batch, ...] to logits [batch'] (an nn.Module, or a
functional view of one, as the unrolled GAN uses); batch' < batch when D packs samples.
"""

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.devices import full_precision
from trainer.distributed import local_rows
from trainer.registry import Registry

Critic = Callable[[Tensor], Tensor]
LOSSES: Registry[type["GANLoss"]] = Registry("loss")


class LossSettings(Protocol):
    """The config fields a loss reads (trainer.config.TrainConfig has them; it imports this
    module to check loss names, so the type is structural rather than imported)."""

    gp_lambda: float


class GANLoss:
    """Base class: both losses return a scalar to minimise."""

    @classmethod
    def from_config(cls, config: LossSettings, rng: torch.Generator) -> "GANLoss":
        """The loss with the config's parameters; `rng` feeds any randomness it needs."""
        return cls()

    def discriminator_loss(self, discriminator: Critic, real: Tensor, fake: Tensor) -> Tensor:
        """D's loss on real [batch, ...] and detached fake [batch, ...] samples, scalar."""
        raise NotImplementedError

    def generator_loss(self, discriminator: Critic, fake: Tensor) -> Tensor:
        """G's loss on fake [batch, ...] samples (gradients flow into G), scalar."""
        raise NotImplementedError


@LOSSES.register("non-saturating")
class NonSaturatingLoss(GANLoss):
    """Goodfellow et al. 2014, with the non-saturating generator objective (Sec. 3).

    D maximises log sigma(D(x)) + log(1 - sigma(D(G(z)))), i.e. minimises
    softplus(-D(x)) + softplus(D(G(z))); G maximises log sigma(D(G(z))), i.e. minimises
    softplus(-D(G(z))). D outputs logits, so softplus keeps both stable.
    """

    def discriminator_loss(self, discriminator: Critic, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()

    def generator_loss(self, discriminator: Critic, fake: Tensor) -> Tensor:
        return F.softplus(-discriminator(fake)).mean()


@LOSSES.register("hinge")
class HingeLoss(GANLoss):
    """Lim & Ye 2017; Miyato et al. 2018, Eq. 16-17.

    D: E relu(1 - D(x)) + E relu(1 + D(G(z))); G: -E D(G(z)).
    """

    def discriminator_loss(self, discriminator: Critic, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1.0 - discriminator(real)).mean() + F.relu(1.0 + discriminator(fake)).mean()

    def generator_loss(self, discriminator: Critic, fake: Tensor) -> Tensor:
        return -discriminator(fake).mean()


def gradient_penalty(
    discriminator: Critic, real: Tensor, fake: Tensor, rng: torch.Generator
) -> Tensor:
    """Gulrajani et al. 2017, Algorithm 1: E (||grad D(x_hat)||_2 - 1)^2, scalar.

    x_hat = eps * x + (1 - eps) * x_fake with eps ~ U[0, 1] per sample, drawn from `rng`. The
    norm is taken per D output, over all the inputs it sees (a packed D sees `pack` samples).
    The graph is kept (create_graph) so the penalty trains D, and unrolled steps through it.
    It runs in float32 even under autocast (it differentiates twice), and eps is this rank's
    rows of the global batch's draw (trainer.distributed.local_rows).
    """
    trailing = (1,) * (real.dim() - 1)
    draw = lambda n: torch.rand((n, *trailing), generator=rng, dtype=torch.float32)  # noqa: E731
    eps = local_rows(draw, real.shape[0]).to(real.device)
    with full_precision(real):
        x_hat = (eps * real.float() + (1.0 - eps) * fake.float()).detach().requires_grad_(True)
        output = discriminator(x_hat)  # [batch']
        (grad,) = torch.autograd.grad(output.sum(), x_hat, create_graph=True)
        norms = grad.reshape(output.shape[0], -1).norm(dim=1)
        return ((norms - 1.0) ** 2).mean()


@LOSSES.register("wgan-gp")
class WassersteinGPLoss(GANLoss):
    """Gulrajani et al. 2017, Algorithm 1: the critic minimises
    E D(x_fake) - E D(x) + lambda * E (||grad D(x_hat)||_2 - 1)^2; G minimises -E D(G(z)).

    lambda = `gp_lambda` (the paper's 10 for images; 0.1 for the 2-D mixtures, DESIGN.md); the
    paper's n_critic = 5 critic steps per G step is the config's `d_steps`.
    """

    def __init__(self, gp_lambda: float = 0.1, rng: torch.Generator | None = None):
        self.gp_lambda = gp_lambda
        self.rng = rng if rng is not None else torch.Generator().manual_seed(0)

    @classmethod
    def from_config(cls, config: LossSettings, rng: torch.Generator) -> "GANLoss":
        return cls(config.gp_lambda, rng)

    def discriminator_loss(self, discriminator: Critic, real: Tensor, fake: Tensor) -> Tensor:
        wasserstein = discriminator(fake).mean() - discriminator(real).mean()
        penalty = gradient_penalty(discriminator, real, fake, self.rng)
        return wasserstein + self.gp_lambda * penalty

    def generator_loss(self, discriminator: Critic, fake: Tensor) -> Tensor:
        return -discriminator(fake).mean()


def get_loss(
    name: str, config: LossSettings | None = None, rng: torch.Generator | None = None
) -> GANLoss:
    """The registered loss `name` (KeyError listing the known names otherwise), with the
    config's parameters when given and `rng` for its randomness."""
    loss_class = LOSSES.get(name)
    if config is None:
        return loss_class()
    return loss_class.from_config(config, rng if rng is not None else torch.Generator())
