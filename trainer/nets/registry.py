"""The network registries, filled by the member modules the package face imports (this module
imports none of them). Entries build from plain ints, so a card's {"name", "args"} rebuilds
the network."""

from collections.abc import Callable

from torch import nn

from trainer.registry import Registry

# GAN architectures: args -> (generator, discriminator)
ARCHITECTURES: Registry[Callable[..., tuple[nn.Module, nn.Module]]] = Registry("architecture")
# EDM's raw networks F(x_in [batch, *sample_shape], c_noise [batch]) -> [batch, *sample_shape]
SCORE_NETWORKS: Registry[Callable[..., nn.Module]] = Registry("score network")
# VAEs: args -> (encoder x -> (mu, log_var), decoder z -> samples) (vae.py)
VAE_NETWORKS: Registry[Callable[..., tuple[nn.Module, nn.Module]]] = Registry("VAE network")
