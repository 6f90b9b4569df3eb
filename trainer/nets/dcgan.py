"""DCGAN generator and discriminator (Radford et al. 2016) scaled down to 8x8 images.

G: z -> ConvTranspose2d to 4x4 -> ConvTranspose2d to 8x8 -> 3x3 conv to C channels, tanh; batch
norm and ReLU between (the paper's recipe). D: strided convs with LeakyReLU(0.2) and no batch
norm, so its output for one sample never depends on the rest of the batch (PacGAN packing and
gradient penalties stay well defined). At width 64 both nets hold ~0.1-0.3 M parameters and a
step on a batch of 64 takes milliseconds on a 2-core CPU.

D's collapse mitigations are constructor arguments, as for the MLP: packing joins `pack` images
on the channel axis (PacGAN's image recipe), minibatch discrimination and stddev act on the
flattened conv features before the head, spectral norm wraps every conv and linear layer.
"""

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from trainer.nets import ARCHITECTURES
from trainer.nets.mlp import minibatch_layers


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


def pack_images(x: Tensor, pack: int) -> Tensor:
    """PacGAN packing for images: [batch, C, H, W] -> [batch / pack, pack * C, H, W].

    ValueError when batch is not a multiple of `pack`.
    """
    batch, channels, height, width = x.shape
    if batch % pack:
        raise ValueError(f"batch of {batch} images is not divisible by pack={pack}")
    return x.reshape(batch // pack, pack * channels, height, width)


class DCGANDiscriminator(nn.Module):
    """D(x): x [batch, channels, 8, 8] float32 -> logits [batch / pack] float32 (real > 0).

    Layout: pack -> body (two strided convs, flattened: the penultimate `features`) ->
    optional minibatch discrimination and stddev -> linear head.
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 64,
        pack: int = 1,
        minibatch_stddev: bool = False,
        mbd_kernels: int = 0,
        mbd_kernel_dim: int = 3,
        spectral: bool = False,
    ):
        super().__init__()
        self.pack = pack
        self.body = nn.Sequential(
            nn.Conv2d(channels * pack, width, 4, 2, 1),  # 8x8 -> 4x4
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),  # 4x4 -> 2x2
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        features = 2 * width * 2 * 2
        self.batch_layers, features = minibatch_layers(
            features, minibatch_stddev, mbd_kernels, mbd_kernel_dim
        )
        self.head = nn.Linear(features, 1)
        if spectral:  # Miyato et al. 2018: every layer's weight divided by its sigma_max
            for module in [*self.body, self.head]:
                if isinstance(module, nn.Conv2d | nn.Linear):
                    spectral_norm(module)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features f(x): [batch / pack, 8 * width] (before the minibatch layers)."""
        return self.body(pack_images(x, self.pack) if self.pack > 1 else x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.batch_layers(self.features(x))).squeeze(-1)


@ARCHITECTURES.register("dcgan")
def build_dcgan(
    latent_dim: int,
    channels: int,
    width: int,
    d_pack: int = 1,
    d_minibatch_stddev: bool = False,
    d_mbd_kernels: int = 0,
    d_mbd_kernel_dim: int = 3,
    d_spectral_norm: bool = False,
) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """The (G, D) pair; the arguments are what the card stores under architecture.args.

    The d_* keywords are D's mitigations (trainer.mitigations); their defaults build the plain D.
    """
    discriminator = DCGANDiscriminator(
        channels,
        width,
        pack=d_pack,
        minibatch_stddev=d_minibatch_stddev,
        mbd_kernels=d_mbd_kernels,
        mbd_kernel_dim=d_mbd_kernel_dim,
        spectral=d_spectral_norm,
    )
    return DCGANGenerator(latent_dim, channels, width), discriminator
