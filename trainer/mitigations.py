"""GAN mode-collapse mitigations by short name, composable through `TrainConfig.mitigations`.

Each registered `Mitigation` validates its config fields (`check`) and may change G's or D's
architecture (`architecture_args`, stored in the card's architecture args). The training-time
pieces live here as plain functions the training loop calls:

- "unrolled" (Metz et al. 2017): G's loss against D unrolled `unroll_steps` differentiable
  Adam steps (`unrolled_critic`); D's own update is the ordinary one.
- "pack" (PacGAN, Lin et al. 2018): D judges `pack` samples joined on the feature axis; with
  `pack_mode` "batches" they come from `pack` independent batches (`pack_draws`, `packed_fakes`).
- "minibatch-stddev" (Karras et al. 2018): the batch's mean feature std as an extra D feature.
- "minibatch-discrimination" (Salimans et al. 2016): the tensor-T layer, B kernels of C dims.
- "feature-matching" (Salimans et al. 2016): G minimises ||E f(x) - E f(G(z))||^2 on D's
  penultimate features, replacing G's adversarial loss as in the paper.
- "spectral-norm" (Miyato et al. 2018): every D linear layer divided by its top singular value.
- "instance-noise" (Sonderby et al. 2017; Arjovsky & Bottou 2017): Gaussian noise on D's real
  and fake inputs, std annealed linearly from `instance_noise_std` to 0 over the run.
- "r1" (Mescheder et al. 2018): gamma/2 E||grad_x D(x)||^2 on real data added to D's loss.
- "diffaugment" (Zhao et al. 2020): the same random translation and cutout, differentiable, on
  every image D sees (real and fake, in D's and G's updates); no colour transform, which would
  mix the channels of stacked digits.
- "fourier-features" (Tancik et al. 2020): D sees sin and cos of `fourier_features` random
  projections of each sample, at angular frequencies log-uniform in [1, `fourier_max_frequency`]
  radians per data unit, besides the sample itself (point architectures only).
- "minibatch-nn" (this project's, after Salimans et al. 2016's minibatch discrimination): D
  sees each sample with log of its distance to the nearest other sample of its batch (point
  architectures only).
- "mmd" (the generator loss of Li et al. 2015 and Dziugaite et al. 2015, added to G's adversarial
  one): G also minimises `mmd_weight` x the unbiased squared maximum mean discrepancy (Gretton et
  al. 2012) between its batch and D's real batch, with a sum of Gaussian kernels of bandwidths
  `MMD_BANDWIDTHS` (0.005 to 5.12 data units, doubling) times `mmd_bandwidth_scale` (1 for the
  2-D mixtures; images set their distances' scale). The fakes' kernel term repels them from
  one another at every scale, and its minimum is the data's distribution, so it pulls against a
  D that rewards the centre of a mode.
- "noise-injection" (StyleGAN's noise inputs, Karras et al. 2019, Sec. 3.2, at G's output): the
  last `data_dim` latent axes are not fed to G's MLP but added to its output, each output axis
  scaled by a learned factor that starts at 0, so G can spread its samples inside a mode without
  bending its map of the other axes (the 2-D mixtures: point architectures only).
- "g-ema" (Karras et al. 2018, Sec. A.1; Yazici et al. 2019): an exponential moving average of
  G's weights, w_ema <- decay * w_ema + (1 - decay) * w after every G step, is the generator
  that is evaluated and exported; training itself is unchanged.
- "ttur" (Heusel et al. 2017): two time-scale learning rates are lr_g/lr_d; this name only
  checks that D learns faster (lr_d > lr_g) so a preset can state the recipe.
"""

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call

from trainer.datasets.registry import IMAGE_DATASETS, get_dataset
from trainer.devices import full_precision
from trainer.distributed import local_rows
from trainer.losses import Critic
from trainer.nets.mlp import squared_distances
from trainer.registry import Registry

MITIGATIONS: Registry[type["Mitigation"]] = Registry("mitigation")
# "in-batch": m consecutive samples of one batch_size batch form a D input (batch_size / m of
# them); "batches": m independent batch_size batches, joined row by row (batch_size D inputs),
# as in the PacGAN authors' code (pacgan_task.py draws num_packing z batches of the full size).
PACK_MODES = ("in-batch", "batches")


class MitigationSettings(Protocol):
    """The config fields the mitigations read (trainer.config.TrainConfig has them; it imports
    this module to check them, so the type is structural rather than imported)."""

    dataset: str
    mitigations: tuple[str, ...]
    batch_size: int
    steps: int
    lr_g: float
    lr_d: float
    pack: int
    pack_mode: str
    mbd_kernels: int
    mbd_kernel_dim: int
    instance_noise_std: float
    classes: int
    latent_dim: int
    mmd_weight: float
    fourier_features: int
    fourier_max_frequency: float


class Mitigation:
    """Base class: a mitigation checks its config fields and may change G's or D's
    architecture."""

    def check(self, config: MitigationSettings) -> None:
        """ValueError with a readable message when `config` cannot use this mitigation."""

    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        """Extra keyword arguments for the architecture builder (d_* names for D, g_* for
        G), plain values."""
        return {}


@MITIGATIONS.register("unrolled")
class Unrolled(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        if "feature-matching" in config.mitigations:
            raise ValueError(
                "'unrolled' and 'feature-matching' both replace G's loss against D; choose one"
            )


@MITIGATIONS.register("pack")
class Pack(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        if config.pack_mode == "in-batch" and config.batch_size % config.pack:
            raise ValueError(
                f"pack: batch_size {config.batch_size} is not divisible by pack {config.pack} "
                f"(or use pack_mode 'batches': {config.pack} batches of {config.batch_size})"
            )

    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {"d_pack": config.pack}


@MITIGATIONS.register("minibatch-stddev")
class MinibatchStddev(Mitigation):
    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {"d_minibatch_stddev": True}


@MITIGATIONS.register("minibatch-discrimination")
class MinibatchDiscrimination(Mitigation):
    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {"d_mbd_kernels": config.mbd_kernels, "d_mbd_kernel_dim": config.mbd_kernel_dim}


@MITIGATIONS.register("feature-matching")
class FeatureMatching(Mitigation):
    pass


@MITIGATIONS.register("spectral-norm")
class SpectralNorm(Mitigation):
    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {"d_spectral_norm": True}


@MITIGATIONS.register("instance-noise")
class InstanceNoise(Mitigation):
    pass


@MITIGATIONS.register("r1")
class R1(Mitigation):
    pass


@MITIGATIONS.register("diffaugment")
class DiffAugment(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        if config.dataset not in IMAGE_DATASETS:
            raise ValueError(
                f"diffaugment transforms images; {config.dataset!r} is not an image dataset "
                f"(choose from {', '.join(IMAGE_DATASETS)})"
            )


@MITIGATIONS.register("fourier-features")
class FourierFeatures(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        point_only("fourier-features", config)

    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {
            "d_fourier_features": config.fourier_features,
            "d_fourier_max_frequency": config.fourier_max_frequency,
        }


@MITIGATIONS.register("minibatch-nn")
class MinibatchNearestNeighbour(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        point_only("minibatch-nn", config)

    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {"d_nearest_neighbour": True}


@MITIGATIONS.register("mmd")
class MaximumMeanDiscrepancy(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        if "feature-matching" in config.mitigations:
            raise ValueError(
                "'mmd' adds to G's adversarial loss, which 'feature-matching' replaces; choose one"
            )


@MITIGATIONS.register("noise-injection")
class NoiseInjection(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        point_only("noise-injection", config)
        dim = get_dataset(config.dataset).dim  # a point dataset: cheap to build
        if config.latent_dim <= dim:
            raise ValueError(
                f"noise-injection takes the last {dim} latent axes as output noise, so "
                f"latent_dim must be at least {dim + 1}, got {config.latent_dim}"
            )
        if config.classes:
            raise ValueError(
                "noise-injection takes the last latent axes as output noise, where a "
                "class-conditional G joins its label embedding; use it with classes 0"
            )

    def architecture_args(self, config: MitigationSettings) -> dict[str, Any]:
        return {"g_noise_injection": True}


@MITIGATIONS.register("g-ema")
class GeneratorAverage(Mitigation):
    pass


@MITIGATIONS.register("ttur")
class TwoTimeScale(Mitigation):
    def check(self, config: MitigationSettings) -> None:
        if not config.lr_d > config.lr_g:
            raise ValueError(
                f"ttur: needs lr_d > lr_g (Heusel et al. 2017), got lr_d {config.lr_d} "
                f"and lr_g {config.lr_g}"
            )


def point_only(name: str, config: MitigationSettings) -> None:
    """ValueError when `config` trains on images: mitigation `name` is for point data."""
    if config.dataset in IMAGE_DATASETS:
        raise ValueError(
            f"{name} is for the point generators and critics (arch 'mlp' or 'pacgan-mlp'); "
            f"{config.dataset!r} is an image dataset"
        )


def check_mitigations(config: MitigationSettings) -> None:
    """ValueError on unknown or repeated names, or a config a mitigation cannot use."""
    names = config.mitigations
    for name in names:
        if name not in MITIGATIONS:
            raise ValueError(
                f"unknown mitigation {name!r}; choose from {', '.join(MITIGATIONS.names())}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"mitigations repeat a name: {list(names)}")
    for name in names:
        MITIGATIONS.get(name)().check(config)


def architecture_args(config: MitigationSettings) -> dict[str, Any]:
    """The architecture args the config's mitigations add (empty for a plain G and D)."""
    args: dict[str, Any] = {}
    for name in config.mitigations:
        args |= MITIGATIONS.get(name)().architecture_args(config)
    return args


def pack_draws(config: MitigationSettings) -> int:
    """How many batch_size batches of real and fake samples a D step draws: `pack` with
    "pack" in pack_mode "batches", else 1."""
    batches = "pack" in config.mitigations and config.pack_mode == "batches"
    return config.pack if batches else 1


def packed_fakes(generator: nn.Module, z: Tensor, draws: int) -> Tensor:
    """G's samples for `draws` independent batches: z [batch * draws, latent] -> [batch * draws,
    ...], rows i * draws .. i * draws + draws - 1 being D's i-th packed input (the pack's j-th
    member from batch j, z[j::draws]). G runs once per batch, so batch norm normalises over
    each batch of `batch` samples, as with the authors' separate decoder applications."""
    if draws == 1:
        return generator(z)
    batches = [generator(z[j::draws]) for j in range(draws)]  # each [batch, ...]
    return torch.stack(batches, dim=1).flatten(0, 1)


def instance_noise_std(config: MitigationSettings, step: int) -> float:
    """Linear annealing: instance_noise_std at step 0, 0 at step `config.steps` and after."""
    if config.steps == 0:
        return 0.0
    return config.instance_noise_std * max(0.0, 1.0 - step / config.steps)


def add_instance_noise(x: Tensor, std: float, rng: torch.Generator) -> Tensor:
    """x + N(0, std^2) with the noise drawn from `rng` (this rank's rows of the global batch's
    draw, trainer.distributed.local_rows); x itself when std is 0."""
    if std == 0.0:
        return x
    draw = lambda n: torch.randn((n, *x.shape[1:]), generator=rng, dtype=x.dtype)  # noqa: E731
    return x + std * local_rows(draw, x.shape[0]).to(x.device)


def r1_penalty(discriminator: Critic, real: Tensor, gamma: float) -> Tensor:
    """Mescheder et al. 2018, Eq. 9: gamma/2 * E ||grad_x D(x)||^2 over real x, scalar.

    The squared norm is taken per D output (over all samples a packed D joins). It runs in
    float32 even under autocast: it differentiates twice.
    """
    with full_precision(real):
        real = real.detach().float().requires_grad_(True)
        output = discriminator(real)  # [batch']
        (grad,) = torch.autograd.grad(output.sum(), real, create_graph=True)
        return 0.5 * gamma * grad.reshape(output.shape[0], -1).pow(2).sum(dim=1).mean()


def feature_matching_loss(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """Salimans et al. 2016, Sec. 3.1: ||E f(x) - E f(G(z))||_2^2 on D's `features`, scalar."""
    real_mean = discriminator.features(real).detach().float().mean(dim=0)  # float32 under amp
    return (real_mean - discriminator.features(fake).float().mean(dim=0)).pow(2).sum()


# "mmd": Gaussian kernel bandwidths in data units, 0.005 * 2^k for k = 0..10 (0.005 to 5.12):
# finer than the 2-D mixtures' smallest mode std (ring8: 0.01), wider than their extent.
MMD_BANDWIDTHS = tuple(0.005 * 2.0**k for k in range(11))


# exp underflows to a subnormal or to 0 below this exponent, where CPU exp takes a slow path
# (10-40x the time); clamping there changes each kernel value by under 1.7e-38, which no float32
# sum of the kernel keeps.
SMALLEST_EXPONENT = -87.0


class GaussianKernelSum(torch.autograd.Function):
    """squared [n, m], scales (-1 / (2 s^2) for each bandwidth s) -> sum_s exp(scale_s * squared)
    [n, m]. Forward also keeps the derivative sum_s scale_s exp(scale_s * squared), so backward
    is one product instead of autograd's pass over the [S, n, m] exponentials."""

    @staticmethod
    def forward(ctx: Any, squared: Tensor, scales: tuple[float, ...]) -> Tensor:
        kernel, slope = torch.zeros_like(squared), torch.zeros_like(squared)
        for scale in scales:
            term = torch.exp((squared * scale).clamp_(min=SMALLEST_EXPONENT))
            kernel += term
            slope += term.mul_(scale)
        ctx.save_for_backward(slope)
        return kernel

    @staticmethod
    @once_differentiable  # G's loss is differentiated once; a second time would raise
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (slope,) = ctx.saved_tensors
        return grad * slope, None


def mmd_squared(
    real: Tensor, fake: Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS
) -> Tensor:
    """Unbiased MMD^2 (Gretton et al. 2012, Eq. 3) between real [n, ...] and fake [m, ...]
    (flattened), kernel sum_s exp(-||a - b||^2 / (2 s^2)); scalar, in float32. Gradients reach
    `fake` (real is a constant)."""
    real, fake = real.detach().flatten(1).float(), fake.flatten(1).float()
    scales = tuple(-1.0 / (2.0 * s * s) for s in bandwidths)

    def kernel_mean(a: Tensor, b: Tensor, same: bool) -> Tensor:
        k = GaussianKernelSum.apply(squared_distances(a, b), scales)
        if not same:
            return k.mean()
        n = a.shape[0]  # the unbiased estimate leaves out each sample's own term
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    return (
        kernel_mean(real, real, True)
        + kernel_mean(fake, fake, True)
        - 2 * kernel_mean(real, fake, False)
    )


def adam_step(
    params: dict[str, Tensor],
    grads: tuple[Tensor, ...],
    moments: dict[str, tuple[Tensor, Tensor, float]],
    optimizer: torch.optim.Optimizer,
) -> dict[str, Tensor]:
    """One differentiable Adam step (Kingma & Ba 2015, Algorithm 1) on copies of the moments.

    sqrt(v_hat + eps^2) replaces sqrt(v_hat) + eps so the derivative stays finite at v_hat = 0.
    """
    group = optimizer.param_groups[0]
    (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
    updated = {}
    for (name, p), g in zip(params.items(), grads, strict=True):
        m, v, t = moments[name]
        m, v, t = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g, t + 1
        moments[name] = (m, v, t)
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        updated[name] = p - lr * m_hat / torch.sqrt(v_hat + eps * eps)
    return updated


def adam_moments(
    discriminator: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, tuple[Tensor, Tensor, float]]:
    """Detached copies of D's Adam moments (m, v, step) by parameter name; zeros when unset."""
    moments = {}
    for name, p in discriminator.named_parameters():
        state = optimizer.state.get(p, {})
        if "exp_avg" in state:
            step = float(state["step"])
            moments[name] = (state["exp_avg"].detach(), state["exp_avg_sq"].detach(), step)
        else:
            moments[name] = (torch.zeros_like(p), torch.zeros_like(p), 0.0)
    return moments


def unrolled_critic(
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    objective: Callable[[Critic], Tensor],
    steps: int,
) -> Critic:
    """Metz et al. 2017, Eq. 5-7: D after `steps` differentiable Adam steps on `objective`.

    objective(critic) -> D's loss (on a fixed real and fake batch: fake keeps G's graph, so G's
    gradient flows through the unrolled updates). D's module and optimizer are left unchanged
    (spectral norm's power-iteration vectors still advance, as on any training forward).
    The paper unrolls with Adam; here each step continues from D's current Adam moments.
    """
    if steps == 0:
        return discriminator
    params = {n: p.detach().requires_grad_(True) for n, p in discriminator.named_parameters()}
    moments = adam_moments(discriminator, optimizer)

    def critic_with(weights: dict[str, Tensor]) -> Critic:
        return lambda x: functional_call(discriminator, weights, (x,))

    for _ in range(steps):
        loss = objective(critic_with(params))
        grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=True)
        params = adam_step(params, grads, moments, optimizer)
    return critic_with(params)


# DiffAugment's policy "translation,cutout" with the paper's ratios (Zhao et al. 2020, code:
# DiffAugment_pytorch.py): shifts of up to 1/8 of the side, a cutout square of half the side.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def per_image_integers(low: int, high: int, n: int, rng: torch.Generator) -> Tensor:
    """Integers in [low, high) [n, 1, 1] int64 on the CPU, one per image: this rank's rows of
    the global batch's draw (trainer.distributed.local_rows)."""
    return local_rows(lambda rows: torch.randint(low, high, (rows, 1, 1), generator=rng), n)


def translate(x: Tensor, ratio: float, rng: torch.Generator) -> Tensor:
    """Each image [N, C, H, W] shifted by its own random integer offset in
    [-round(ratio * side), +round(ratio * side)] per axis, zeros shifted in; differentiable."""
    n, _, height, width = x.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = per_image_integers(-shift_y, shift_y + 1, n, rng).to(x.device)
    dx = per_image_integers(-shift_x, shift_x + 1, n, rng).to(x.device)
    padded = nn.functional.pad(x, (shift_x, shift_x, shift_y, shift_y))
    rows = torch.arange(height, device=x.device).reshape(1, height, 1) + shift_y - dy  # [N, H, 1]
    cols = torch.arange(width, device=x.device).reshape(1, 1, width) + shift_x - dx  # [N, 1, W]
    batch = torch.arange(n, device=x.device).reshape(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float, rng: torch.Generator) -> Tensor:
    """Each image [N, C, H, W] with a square of side round(ratio * side) zeroed at a random
    centre (clipped at the borders), the same square on every channel."""
    n, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = per_image_integers(0, height + (1 - size_y % 2), n, rng).to(x.device) - size_y // 2
    left = per_image_integers(0, width + (1 - size_x % 2), n, rng).to(x.device) - size_x // 2
    rows = torch.arange(height, device=x.device).reshape(1, height, 1)
    cols = torch.arange(width, device=x.device).reshape(1, 1, width)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def diff_augment(x: Tensor, rng: torch.Generator) -> Tensor:
    """DiffAugment's "translation,cutout" on images [N, C, H, W] (Zhao et al. 2020)."""
    return cutout(translate(x, TRANSLATION_RATIO, rng), CUTOUT_RATIO, rng)
