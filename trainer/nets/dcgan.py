"""DCGAN generator and discriminator (Radford et al. 2016) for square images of `size` 8, 16, 32...
or 28 (MNIST's side).

G: z -> ConvTranspose2d to base x base (4x4; 7x7 for 28) -> a stride-2 ConvTranspose2d per
doubling up to size x size (channels halving down to `width`) -> 3x3 conv to C channels, tanh;
batch norm and ReLU between (the paper's recipe). D mirrors it with one halving more: stride-2
convs from size x size down to 2x2 (28: 14, 7, 3) (channels doubling from `width`) with
LeakyReLU(0.2) and no batch norm, so its output for one sample never depends on the rest of the
batch (PacGAN packing and gradient penalties stay well defined).
Most benchmarks' images are 8x8: at width 64 both nets hold ~0.1-0.3 M parameters and a step on a
batch of 64 takes milliseconds on a 2-core CPU. Size 28 is Stacked MNIST at the papers' size
(DCGAN-tensorflow's MNIST generator also starts at 7x7); size 32 (4 ConvTranspose layers) is the
GPU-scale generator of bench/generation.py.

D's collapse mitigations are constructor arguments, as for the MLP: packing joins `pack` images
on the channel axis (PacGAN's image recipe), minibatch discrimination and stddev act on the
flattened conv features before the head, spectral norm wraps every conv and linear layer.
"""

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from trainer.nets.mlp import minibatch_layers
from trainer.nets.registry import ARCHITECTURES


class DCGANGenerator(nn.Module):
    """G(z): z [batch, latent_dim] float32 -> images [batch, channels, size, size] float32 in
    [-1, 1]."""

    value_range = (-1.0, 1.0)

    def __init__(self, latent_dim: int = 32, channels: int = 1, width: int = 64, size: int = 8):
        super().__init__()
        self.latent_dim = latent_dim
        base, doublings = image_base(size)  # base x base -> size x size
        widths = [width * 2 ** (doublings - i) for i in range(doublings + 1)]  # base ... size
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], base, 1, 0, bias=False),  # 1x1 -> base
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for wide, narrow in zip(widths, widths[1:], strict=False):  # each doubles the side
            layers += [nn.ConvTranspose2d(wide, narrow, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(narrow), nn.ReLU()]
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


def image_base(size: int) -> tuple[int, int]:
    """(base, doublings) with size = base * 2**doublings: base 4 for a power of two >= 8, base 7
    for 7 x 2^n >= 28 (MNIST's 28); ValueError for any other size."""
    for base, least in ((4, 1), (7, 2)):
        doublings = (size // base).bit_length() - 1
        if doublings >= least and size == base << doublings:
            return base, doublings
    raise ValueError(
        f"DCGAN image size must be a power of two >= 8, or 7 x 2^n >= 28 (MNIST: 28), got {size}"
    )


def conv_body(channels: int, width: int, size: int) -> tuple[nn.Sequential, int]:
    """(body, features): stride-2 4x4 convs with LeakyReLU(0.2) from size x size down to 2x2
    (28: 3x3), channels doubling from `width`, flattened; features is the flat width."""
    halvings = image_base(size)[1] + 1
    widths = [channels] + [width * 2**i for i in range(halvings)]
    layers: list[nn.Module] = []
    side = size
    for narrow, wide in zip(widths, widths[1:], strict=False):  # each halves the side
        layers += [nn.Conv2d(narrow, wide, 4, 2, 1), nn.LeakyReLU(0.2)]
        side = (side - 2) // 2 + 1  # kernel 4, stride 2, padding 1
    return nn.Sequential(*layers, nn.Flatten()), widths[-1] * side * side


def pack_images(x: Tensor, pack: int) -> Tensor:
    """PacGAN packing for images: [batch, C, H, W] -> [batch / pack, pack * C, H, W].

    ValueError when batch is not a multiple of `pack`.
    """
    batch, channels, height, width = x.shape
    if batch % pack:
        raise ValueError(f"batch of {batch} images is not divisible by pack={pack}")
    return x.reshape(batch // pack, pack * channels, height, width)


class DCGANDiscriminator(nn.Module):
    """D(x): x [batch, channels, size, size] float32 -> logits [batch / pack] float32 (real > 0).

    Layout: pack -> body (strided convs down to 2x2, flattened: the penultimate `features`) ->
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
        size: int = 8,
    ):
        super().__init__()
        self.pack = pack
        self.body, features = conv_body(channels * pack, width, size)
        self.batch_layers, features = minibatch_layers(
            features, minibatch_stddev, mbd_kernels, mbd_kernel_dim
        )
        self.head = nn.Linear(features, 1)
        if spectral:  # Miyato et al. 2018: every layer's weight divided by its sigma_max
            for module in [*self.body, self.head]:
                if isinstance(module, nn.Conv2d | nn.Linear):
                    spectral_norm(module)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features f(x): [batch / pack, 8 * width] at 8x8 (before the minibatch
        layers)."""
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
    size: int = 8,
    d_width: int = 0,
) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """The (G, D) pair; the arguments are what the card stores under architecture.args.

    The d_* keywords are D's mitigations (trainer.mitigations); their defaults build the plain D.
    size: the images' side (8 for the 8x8 datasets, 28 for MNIST's; cards without it are 8x8).
    d_width: D's channels at 8x8 when > 0 (a weaker D than G), else `width`.
    """
    discriminator = DCGANDiscriminator(
        channels,
        d_width or width,
        pack=d_pack,
        minibatch_stddev=d_minibatch_stddev,
        mbd_kernels=d_mbd_kernels,
        mbd_kernel_dim=d_mbd_kernel_dim,
        spectral=d_spectral_norm,
        size=size,
    )
    return DCGANGenerator(latent_dim, channels, width, size), discriminator
