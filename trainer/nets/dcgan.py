"""DCGAN generator and discriminator (Radford et al. 2016) scaled down to 8x8 images.

G: z -> ConvTranspose2d to 4x4 -> ConvTranspose2d to 8x8 -> 3x3 conv to C channels, tanh; batch
norm and ReLU between (the paper's recipe). D: strided convs with LeakyReLU(0.2) and no batch
norm, so its output for one sample never depends on the rest of the batch (PacGAN packing and
gradient penalties stay well defined). At width 64 both nets hold ~0.1-0.3 M parameters and a
step on a batch of 64 takes milliseconds on a 2-core CPU.
"""

from torch import Tensor, nn

from trainer.nets import ARCHITECTURES


class DCGANGenerator(nn.Module):
    """G(z): z [batch, latent_dim] float32 -> images [batch, channels, 8, 8] float32 in [-1, 1]."""

    value_range = (-1.0, 1.0)

    def __init__(self, latent_dim: int = 32, channels: int = 1, width: int = 64):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 2 * width, 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),  # 4x4 -> 8x8
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """D(x): x [batch, channels, 8, 8] float32 -> logits [batch] float32 (real > 0)."""

    def __init__(self, channels: int = 1, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1),  # 8x8 -> 4x4
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),  # 4x4 -> 2x2
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 2 * 2, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


@ARCHITECTURES.register("dcgan")
def build_dcgan(
    latent_dim: int, channels: int, width: int
) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """The (G, D) pair; the arguments are what the card stores under architecture.args."""
    return DCGANGenerator(latent_dim, channels, width), DCGANDiscriminator(channels, width)
