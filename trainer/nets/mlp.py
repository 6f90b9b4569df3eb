"""MLP generator and discriminator for low-dimensional data (the 2-D mixtures).

Default sizes follow the PacGAN / VEEGAN 2-D experiments: G has 4 hidden layers of 400 ReLU
units, D 3 hidden layers of 200 LeakyReLU(0.2) units. D's collapse mitigations are constructor
arguments (stored in the card's architecture args): packing (PacGAN), minibatch discrimination
(Salimans et al. 2016), minibatch stddev (Karras et al. 2018) and spectral norm (Miyato 2018).

Two architectures are registered: "mlp" (the above, PyTorch's default initialisation) and
"pacgan-mlp", the PacGAN authors' 2-D networks (fjxmlzn/PacGAN,
synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py): G's hidden layers are Linear
(no bias) -> batch norm -> ReLU, D's are maxout units (Goodfellow et al. 2013) of
`d_maxout_pieces` pieces, every weight drawn from N(0, 0.02^2) and every bias 0.
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from trainer.nets.registry import ARCHITECTURES

# The PacGAN authors' settings (blocks defaults in their code): weights ~ N(0, 0.02^2), biases 0;
# batch norm with epsilon 1e-4 and population statistics p <- 0.95 p + 0.05 batch.
PACGAN_INIT_STD = 0.02
PACGAN_MAXOUT_PIECES = 5
PACGAN_BN_EPS = 1e-4
PACGAN_BN_MOMENTUM = 0.05


def mlp_layers(
    in_dim: int,
    hidden: int,
    depth: int,
    out_dim: int,
    activation: Callable[[], nn.Module],
    batch_norm: bool = False,
) -> nn.Sequential:
    """Linear -> activation, `depth` times at width `hidden`, then a linear output layer.

    With batch_norm, each hidden Linear has no bias and is followed by batch norm (PacGAN's G).
    """
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden, eps=PACGAN_BN_EPS, momentum=PACGAN_BN_MOMENTUM))
        layers.append(activation())
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """G(z): z [batch, latent_dim] float32 -> samples [batch, out_dim] float32 (unbounded).

    With batch_norm, training-mode outputs depend on the whole batch; eval mode (sampling,
    export) uses the running statistics, so each sample depends on its own z only.

    With noise_injection (StyleGAN's noise inputs, Karras et al. 2019, Sec. 3.2, here at the
    output), the last out_dim axes of z are not fed to the MLP: they are Gaussian noise added to
    its output, scaled per output axis by a learned factor b that starts at 0 (as StyleGAN's):
    G(z) = MLP(z[:, :-out_dim]) + b * z[:, -out_dim:]. The MLP then maps latent_dim - out_dim
    axes, and the spread inside a mode need not come from bending that map.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: int = 400,
        depth: int = 4,
        out_dim: int = 2,
        batch_norm: bool = False,
        noise_injection: bool = False,
    ):
        super().__init__()
        mapped = latent_dim - out_dim if noise_injection else latent_dim
        if mapped < 1:
            raise ValueError(
                f"noise injection takes the last {out_dim} latent axes as output noise, so "
                f"latent_dim must be at least {out_dim + 1}, got {latent_dim}"
            )
        self.net = mlp_layers(mapped, hidden, depth, out_dim, nn.ReLU, batch_norm)
        self.noise_scale = nn.Parameter(torch.zeros(out_dim)) if noise_injection else None

    def forward(self, z: Tensor) -> Tensor:
        if self.noise_scale is None:
            return self.net(z)
        noise_axes = self.noise_scale.shape[0]
        return self.net(z[:, :-noise_axes]) + self.noise_scale * z[:, -noise_axes:]


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """PacGAN packing: [batch, dim] -> [batch / pack, pack * dim] (consecutive samples joined).

    ValueError when batch is not a multiple of `pack`.
    """
    if x.shape[0] % pack:
        raise ValueError(f"batch of {x.shape[0]} samples is not divisible by pack={pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1])


class Maxout(nn.Module):
    """Goodfellow et al. 2013: h [batch, in_features] -> [batch, out_features], each output the
    max over `pieces` affine maps of h (blocks' LinearMaxout: one Linear to out x pieces, then
    the max over the pieces of each output)."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h).unflatten(-1, (-1, self.pieces)).amax(dim=-1)


def discriminator_body(in_dim: int, hidden: int, depth: int, maxout_pieces: int) -> nn.Sequential:
    """D's hidden layers: `depth` x (Linear + LeakyReLU(0.2)), or maxout units of
    `maxout_pieces` pieces when that is > 0."""
    layers: list[nn.Module] = []
    for layer in range(depth):
        width = in_dim if layer == 0 else hidden
        if maxout_pieces > 0:
            layers.append(Maxout(width, hidden, maxout_pieces))
        else:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class FourierFeatures(nn.Module):
    """Random Fourier features of D's input (Tancik et al. 2020): x [batch, dim] ->
    [batch, dim + 2 * count], x joined by sin(x B) and cos(x B).

    B's columns are fixed at construction (from the global torch RNG): random directions with
    angular frequencies log-uniform in [1, max_frequency] radians per data unit, so D can
    resolve structure as fine as 1 / max_frequency (an MLP alone learns such high frequencies
    slowly: the spectral bias that Tancik et al. lift this way).
    """

    def __init__(self, dim: int, count: int, max_frequency: float):
        super().__init__()
        directions = nn.functional.normalize(torch.randn(dim, count), dim=0)
        magnitudes = max_frequency ** torch.rand(count)  # log-uniform in [1, max_frequency]
        self.register_buffer("frequencies", directions * magnitudes)

    def forward(self, x: Tensor) -> Tensor:
        phase = x @ self.frequencies
        return torch.cat([x, torch.sin(phase), torch.cos(phase)], dim=1)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 for rows a [n, d] and b [m, d]: [n, m] (differentiable everywhere, unlike
    torch.cdist's square root at 0)."""
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(dim=2)


class NearestNeighbourDistance(nn.Module):
    """x [batch, dim] -> [batch, dim + 1]: each sample joined by log of its distance to the
    nearest other sample of its batch (this project's minibatch feature, in the family of
    Salimans et al. 2016's minibatch discrimination: a sample's neighbours in the batch, here
    with no learned kernel and no scale to learn).

    D sees the local spacing of the batch where each sample lies; a generator whose samples
    crowd tighter than the data's inside a mode gets them pushed apart.
    """

    def forward(self, x: Tensor) -> Tensor:
        squared = squared_distances(x, x)
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        nearest = squared.masked_fill(eye, float("inf")).amin(dim=1)
        # log of the distance, finite with a finite gradient where two samples coincide
        return torch.cat([x, 0.5 * torch.log(nearest + 1e-12).unsqueeze(1)], dim=1)


class MinibatchStddev(nn.Module):
    """Karras et al. 2018, Sec. 3: append mean_f(std_batch(h_f)) to every sample.

    h [batch, features] -> [batch, features + 1]; the extra feature is ~0 (sqrt(1e-8)) when the
    batch's samples are identical, so D can spot a collapsed batch.
    """

    def forward(self, h: Tensor) -> Tensor:
        std = torch.sqrt(h.var(dim=0, unbiased=False) + 1e-8)  # [features]
        return torch.cat([h, std.mean().expand(h.shape[0], 1)], dim=1)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, Sec. 3.2: h [batch, A] -> [batch, A + B].

    M = h T reshaped to [batch, B, C]; c_b(i, j) = exp(-||M_i,b - M_j,b||_L1);
    o(i)_b = sum over j != i of c_b(i, j) (the self term, always 1, is left out).
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        # T ~ N(0, 0.05^2), the initialisation of the paper's code (improved-gan).
        self.T = nn.Parameter(0.05 * torch.randn(in_features, kernels * kernel_dim))

    def forward(self, h: Tensor) -> Tensor:
        M = (h @ self.T).reshape(h.shape[0], self.kernels, self.kernel_dim)  # [batch, B, C]
        l1 = (M.unsqueeze(0) - M.unsqueeze(1)).abs().sum(dim=3)  # [batch, batch, B]
        o = torch.exp(-l1).sum(dim=1) - 1.0  # [batch, B], minus the j == i term
        return torch.cat([h, o], dim=1)


def minibatch_layers(
    width: int, stddev: bool, mbd_kernels: int, mbd_kernel_dim: int
) -> tuple[nn.Sequential, int]:
    """D's batch-aware layers on features [batch, width] and the width they output:
    minibatch discrimination (+mbd_kernels, when > 0), then minibatch stddev (+1, when on)."""
    layers: list[nn.Module] = []
    if mbd_kernels > 0:
        layers.append(MinibatchDiscrimination(width, mbd_kernels, mbd_kernel_dim))
        width += mbd_kernels
    if stddev:
        layers.append(MinibatchStddev())
        width += 1
    return nn.Sequential(*layers), width


def add_spectral_norm(discriminator: nn.Module) -> None:
    """Miyato et al. 2018: every Linear layer's weight (maxout units' too) divided by its top
    singular value, in place."""
    for module in [m for m in discriminator.modules() if isinstance(m, nn.Linear)]:
        spectral_norm(module)


class MLPDiscriminator(nn.Module):
    """D(x): x [batch, in_dim] float32 -> logits [batch / pack] float32 (real > 0).

    Layout: optional nearest-neighbour distance (+1) -> optional Fourier features (+2 x
    fourier_features per sample) -> pack -> body (depth x Linear + LeakyReLU(0.2), or maxout
    units of `maxout_pieces` pieces; the penultimate `features`) -> optional minibatch
    discrimination (+kernels) -> optional minibatch stddev (+1) -> head.
    """

    def __init__(
        self,
        in_dim: int = 2,
        hidden: int = 200,
        depth: int = 3,
        pack: int = 1,
        minibatch_stddev: bool = False,
        mbd_kernels: int = 0,
        mbd_kernel_dim: int = 3,
        spectral: bool = False,
        maxout_pieces: int = 0,
        fourier_features: int = 0,
        fourier_max_frequency: float = 1.0,
        nearest_neighbour: bool = False,
    ):
        super().__init__()
        self.pack = pack
        self.nearest = NearestNeighbourDistance() if nearest_neighbour else None
        in_dim += 1 if nearest_neighbour else 0
        self.fourier = None
        if fourier_features > 0:
            self.fourier = FourierFeatures(in_dim, fourier_features, fourier_max_frequency)
            in_dim += 2 * fourier_features
        self.body = discriminator_body(in_dim * pack, hidden, depth, maxout_pieces)
        self.batch_layers, width = minibatch_layers(
            hidden, minibatch_stddev, mbd_kernels, mbd_kernel_dim
        )
        self.head = nn.Linear(width, 1)
        if spectral:
            add_spectral_norm(self)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features f(x): [batch / pack, hidden] (before the minibatch layers)."""
        if self.nearest is not None:  # the batch's spacing, on the data's own coordinates
            x = self.nearest(x)
        if self.fourier is not None:  # each sample's own features, then packed
            x = self.fourier(x)
        return self.body(pack_samples(x, self.pack) if self.pack > 1 else x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.batch_layers(self.features(x))).squeeze(-1)


@ARCHITECTURES.register("mlp")
def build_mlp(
    latent_dim: int,
    data_dim: int,
    g_hidden: int,
    g_depth: int,
    d_hidden: int,
    d_depth: int,
    d_pack: int = 1,
    d_minibatch_stddev: bool = False,
    d_mbd_kernels: int = 0,
    d_mbd_kernel_dim: int = 3,
    d_spectral_norm: bool = False,
    g_batch_norm: bool = False,
    d_maxout_pieces: int = 0,
    init_std: float = 0.0,
    g_noise_injection: bool = False,
    d_fourier_features: int = 0,
    d_fourier_max_frequency: float = 1.0,
    d_nearest_neighbour: bool = False,
) -> tuple[MLPGenerator, MLPDiscriminator]:
    """The (G, D) pair; the arguments are what the card stores under architecture.args.

    The d_* keywords up to d_spectral_norm are D's mitigations (trainer.mitigations); their
    defaults build the plain D. The next three (batch norm in G, maxout units in D, N(0,
    init_std^2) weights when > 0, else PyTorch's initialisation) are what "pacgan-mlp" sets;
    g_noise_injection is G's mitigation "noise-injection" (MLPGenerator).
    """
    generator = MLPGenerator(
        latent_dim, g_hidden, g_depth, data_dim, g_batch_norm, noise_injection=g_noise_injection
    )
    discriminator = MLPDiscriminator(
        data_dim,
        d_hidden,
        d_depth,
        pack=d_pack,
        minibatch_stddev=d_minibatch_stddev,
        mbd_kernels=d_mbd_kernels,
        mbd_kernel_dim=d_mbd_kernel_dim,
        maxout_pieces=d_maxout_pieces,
        fourier_features=d_fourier_features,
        fourier_max_frequency=d_fourier_max_frequency,
        nearest_neighbour=d_nearest_neighbour,
    )
    if init_std > 0:
        normal_init(init_std, generator, discriminator)
    if d_spectral_norm:  # after the init, which writes the raw weights
        add_spectral_norm(discriminator)
    return generator, discriminator


def normal_init(std: float, *modules: nn.Module) -> None:
    """Every Linear weight of `modules` ~ N(0, std^2), every Linear bias 0 (batch norm keeps
    its scale 1 and shift 0), from the global torch RNG."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)


# PacGAN's 2-D networks: "mlp" with batch norm in G, maxout D units and the authors' init; the
# card stores d_maxout_pieces (trainer.training_loop.architecture_spec) and may override it.
ARCHITECTURES.register("pacgan-mlp")(
    partial(
        build_mlp,
        g_batch_norm=True,
        d_maxout_pieces=PACGAN_MAXOUT_PIECES,
        init_std=PACGAN_INIT_STD,
    )
)
