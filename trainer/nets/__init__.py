"""Architectures by short name. Each entry builds a (generator, discriminator) pair from plain
ints, so the card can store {"name", "args"} and the generator can be rebuilt from them."""

from collections.abc import Callable

from torch import nn

from trainer.registry import Registry

ARCHITECTURES: Registry[Callable[..., tuple[nn.Module, nn.Module]]] = Registry("architecture")

from trainer.nets import dcgan, mlp  # noqa: E402,F401  (registers "dcgan" and "mlp")
