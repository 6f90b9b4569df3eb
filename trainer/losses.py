"""GAN losses by short name. A loss is a small class with two methods, so WGAN-GP, hinge and
the other objectives plug in beside the non-saturating one."""

import torch.nn.functional as F
from torch import Tensor, nn

from trainer.registry import Registry

LOSSES: Registry[type["GANLoss"]] = Registry("loss")


class GANLoss:
    """Base class: both methods return a scalar to minimise."""

    def discriminator_loss(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """D's loss on real [batch, ...] and detached fake [batch, ...] samples, scalar."""
        raise NotImplementedError

    def generator_loss(self, discriminator: nn.Module, fake: Tensor) -> Tensor:
        """G's loss on fake [batch, ...] samples (gradients flow into G), scalar."""
        raise NotImplementedError


@LOSSES.register("non-saturating")
class NonSaturatingLoss(GANLoss):
    """Goodfellow et al. 2014, with the non-saturating generator objective (Sec. 3).

    D maximises log sigma(D(x)) + log(1 - sigma(D(G(z)))), i.e. minimises
    softplus(-D(x)) + softplus(D(G(z))); G maximises log sigma(D(G(z))), i.e. minimises
    softplus(-D(G(z))). D outputs logits, so softplus keeps both stable.
    """

    def discriminator_loss(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()

    def generator_loss(self, discriminator: nn.Module, fake: Tensor) -> Tensor:
        return F.softplus(-discriminator(fake)).mean()


def get_loss(name: str) -> GANLoss:
    """An instance of the registered loss `name` (KeyError listing the known names otherwise)."""
    return LOSSES.get(name)()
