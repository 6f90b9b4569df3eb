"""MLP generator and discriminator for low-dimensional data (the 2-D mixtures).

Default sizes follow the PacGAN / VEEGAN 2-D experiments: G has 4 hidden layers of 400 ReLU
units, D 3 hidden layers of 200 LeakyReLU(0.2) units.
"""

from collections.abc import Callable

from torch import Tensor, nn

from trainer.nets import ARCHITECTURES


def mlp_layers(
    in_dim: int, hidden: int, depth: int, out_dim: int, activation: Callable[[], nn.Module]
) -> nn.Sequential:
    """Linear -> activation, `depth` times at width `hidden`, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """G(z): z [batch, latent_dim] float32 -> samples [batch, out_dim] float32 (unbounded)."""

    def __init__(self, latent_dim: int = 2, hidden: int = 400, depth: int = 4, out_dim: int = 2):
        super().__init__()
        self.net = mlp_layers(latent_dim, hidden, depth, out_dim, nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D(x): x [batch, in_dim] float32 -> logits [batch] float32 (real > 0)."""

    def __init__(self, in_dim: int = 2, hidden: int = 200, depth: int = 3):
        super().__init__()
        self.net = mlp_layers(in_dim, hidden, depth, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


@ARCHITECTURES.register("mlp")
def build_mlp(
    latent_dim: int, data_dim: int, g_hidden: int, g_depth: int, d_hidden: int, d_depth: int
) -> tuple[MLPGenerator, MLPDiscriminator]:
    """The (G, D) pair; the arguments are what the card stores under architecture.args."""
    generator = MLPGenerator(latent_dim, g_hidden, g_depth, data_dim)
    discriminator = MLPDiscriminator(data_dim, d_hidden, d_depth)
    return generator, discriminator
