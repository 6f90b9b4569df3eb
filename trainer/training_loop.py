"""The GAN recipe: build, train_step (D steps, then one G step, with the configured loss and
mitigations), evaluate and the checkpoint's contents. The run directory, resume and the loop
itself are the shared scaffold's (trainer.runs).

Initialisation runs under a forked, seeded RNG; data, latents and the losses'/mitigations'
noise (WGAN-GP's interpolation, instance noise) come from their own CPU torch.Generator, so a
run is a function of its config on any device. The Placement (trainer.devices) says where the
step computes (device, bfloat16 autocast) and which shard of the global batch this torchrun rank
trains on (trainer.distributed).
"""

import copy
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lab.diagnostics.classes import Classes
from lab.noise import gaussian_latents
from trainer.conditioning import default_labels, labelled_rows
from trainer.config import IMAGE_ARCHITECTURES, MAXOUT_ARCHITECTURES, TrainConfig
from trainer.datasets import GaussianMixture, ImageDataset, get_dataset
from trainer.datasets.weighted import WeightedPool
from trainer.devices import Placement, float32_outputs, full_precision
from trainer.distributed import (
    average_buffers,
    average_gradients,
    check_shards,
    local_rows,
    mean_over_ranks,
)
from trainer.evaluation import diagnose_samples, papers_rule, protocol_numbers
from trainer.losses import Critic, GANLoss, get_loss
from trainer.mitigations import (
    MMD_BANDWIDTHS,
    add_instance_noise,
    architecture_args,
    diff_augment,
    feature_matching_loss,
    instance_noise_std,
    mmd_squared,
    pack_draws,
    packed_fakes,
    r1_penalty,
    unrolled_critic,
)
from trainer.nets.conditional import build_networks, init_projection
from trainer.runs import derive_seeds, train, update_ema

Dataset = GaussianMixture | ImageDataset | WeightedPool
EVAL_SEED = 0  # eval latents come from lab.sampling, like the export-time diagnostics


@dataclass
class TrainState:
    """Mutable state of one run; `step` counts completed generator updates."""

    config: TrainConfig
    dataset: Dataset
    architecture: dict[str, Any]
    generator: nn.Module
    discriminator: nn.Module
    loss: GANLoss
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    data_rng: torch.Generator
    latent_rng: torch.Generator
    noise_rng: torch.Generator
    generator_average: nn.Module | None = None  # "g-ema": the EMA of G's weights
    step: int = 0
    placement: Placement = field(default_factory=Placement)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that is evaluated and exported: G's weight average with "g-ema"."""
        return self.generator if self.generator_average is None else self.generator_average

    # The scaffold's plug-in (trainer.runs.Run): the recipe's step, evaluation and checkpoint.
    def train_step(self) -> dict[str, float]:
        """`d_steps` D updates, then one G update on the last fake batch; returns both losses."""
        set_learning_rates(self)
        for _ in range(self.config.d_steps):
            d_loss, real, fake, critic = discriminator_step(self)
        self.discriminator.requires_grad_(False)  # G's step needs no gradient for D's weights
        with self.placement.autocast():
            g_loss = generator_objective(self, real, fake, critic)
        self.optimizer_g.zero_grad(set_to_none=True)
        g_loss.backward()
        average_gradients(self.generator.parameters())
        self.optimizer_g.step()
        average_buffers(self.generator, self.discriminator)  # batch norm: the same on every rank
        if self.generator_average is not None:
            update_ema(self.generator_average, self.generator, self.config.g_ema_decay)
        self.discriminator.requires_grad_(True)
        self.step += 1
        return mean_over_ranks({"d_loss": d_loss, "g_loss": g_loss.item()})

    def evaluate(self, full: bool = False) -> dict[str, Any]:
        """The papers' protocol on `eval_samples` samples: modes covered, high quality, KL,
        and the mode rules' verdict (trainer.evaluation.protocol_numbers); `full`: the full
        report's verdict and feature numbers (coverage) instead."""
        n = self.config.eval_samples
        samples = self.samples(n, EVAL_SEED)
        classes = None
        if self.config.classes:
            classes = Classes(self.config.classes, self.labels(n, EVAL_SEED))
        report = diagnose_samples(samples, self.dataset.name, modes_only=not full, classes=classes)
        return protocol_numbers(report) | papers_rule(samples, self.dataset)

    def labels(self, n: int, seed: int) -> np.ndarray | None:
        """A conditional GAN's labels for (n, seed), as the service draws them by default (the
        data's class mix, lab.conditioning); None for an unconditional one."""
        return default_labels(self.dataset, self.config.classes, n, seed)

    def samples(self, n: int, seed: int) -> np.ndarray:
        """The sampling generator on the service's latents (and labels) of `seed` (generate)."""
        labels = self.labels(n, seed)
        return generate(self.sampling_generator, n, self.config.latent_dim, seed, labels)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: everything load_state_dict needs, tensors and plain values only
        (weights_only loadable). With "g-ema" it also holds `generator_average`, which export
        loads instead of `generator`."""
        average = self.generator_average
        return ({} if average is None else {"generator_average": average.state_dict()}) | {
            "step": self.step,
            "world_size": self.placement.world_size,
            "config": self.config.to_dict(),
            "architecture": self.architecture,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "data_rng": self.data_rng.get_state(),
            "latent_rng": self.latent_rng.get_state(),
            "noise_rng": self.noise_rng.get_state(),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Restore a state_dict (a checkpoint) into this freshly built state."""
        self.generator.load_state_dict(checkpoint["generator"])
        self.discriminator.load_state_dict(checkpoint["discriminator"])
        self.optimizer_g.load_state_dict(checkpoint["optimizer_g"])
        self.optimizer_d.load_state_dict(checkpoint["optimizer_d"])
        self.data_rng.set_state(checkpoint["data_rng"])
        self.latent_rng.set_state(checkpoint["latent_rng"])
        if "noise_rng" in checkpoint:  # absent from checkpoints written before it existed
            self.noise_rng.set_state(checkpoint["noise_rng"])
        if self.generator_average is not None:
            self.generator_average.load_state_dict(checkpoint["generator_average"])
        self.step = int(checkpoint["step"])


def architecture_spec(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """The card's `architecture` object: registered name and plain-int constructor args."""
    args: dict[str, Any] = {"latent_dim": config.latent_dim}
    if config.arch in IMAGE_ARCHITECTURES:
        args |= {"channels": dataset.channels, "width": config.conv_width}
        if config.d_conv_width:  # only where set: the other cards' args are what they were
            args |= {"d_width": config.d_conv_width}
        if dataset.size != 8:  # MNIST's 28; cards without it are 8x8
            args |= {"size": dataset.size}
    else:
        args |= {"data_dim": dataset.dim}
        args |= {"g_hidden": config.g_hidden, "g_depth": config.g_depth}
        args |= {"d_hidden": config.d_hidden, "d_depth": config.d_depth}
    if config.arch in MAXOUT_ARCHITECTURES:
        args |= {"d_maxout_pieces": config.maxout_pieces}
    args |= architecture_args(config)  # the mitigations' G and D args; none for plain nets
    if config.classes:  # trainer/nets/conditional.py
        args |= {"classes": config.classes, "class_embed_dim": config.class_embed_dim}
    return {"name": config.arch, "args": args}


def build(config: TrainConfig, placement: Placement | None = None) -> TrainState:
    """Dataset, networks (seeded init on the CPU, then moved to the placement's device), loss,
    Adam optimizers and the data/latent/noise RNGs (CPU). ValueError when the batch does not
    split across the placement's processes."""
    placement = placement or Placement()
    check_shards(config, placement.world_size)
    init_seed, data_seed, latent_seed, noise_seed = derive_seeds(config.seed, 4)
    dataset = get_dataset(config.dataset)
    if config.data_weights:  # AdaGAN's reweighted points (trainer/boosting.py)
        dataset = WeightedPool.read(config.data_weights, dataset)
    architecture = architecture_spec(config, dataset)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(init_seed)
        generator, discriminator = build_networks(architecture)
        if config.classes:  # D's class embedding, after the rest: their init is unchanged
            init_projection(discriminator, config.projection_init)
    generator, discriminator = generator.to(placement.device), discriminator.to(placement.device)
    if placement.amp:
        float32_outputs(generator, discriminator)
    betas = (config.beta1, config.beta2)
    noise_rng = torch.Generator().manual_seed(noise_seed)
    average = None
    if "g-ema" in config.mitigations:
        average = copy.deepcopy(generator).requires_grad_(False)
    return TrainState(
        config=config,
        dataset=dataset,
        architecture=architecture,
        generator=generator,
        discriminator=discriminator,
        loss=get_loss(config.loss, config, noise_rng),
        optimizer_g=torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=betas),
        optimizer_d=torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=betas),
        data_rng=torch.Generator().manual_seed(data_seed),
        latent_rng=torch.Generator().manual_seed(latent_seed),
        noise_rng=noise_rng,
        generator_average=average,
        placement=placement,
    )


def discriminator_inputs(state: TrainState, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """D's inputs: real and fake, through DiffAugment and annealed instance noise when those
    mitigations are on (in that order)."""
    mitigations = state.config.mitigations
    if "diffaugment" in mitigations:
        real, fake = diff_augment(real, state.noise_rng), diff_augment(fake, state.noise_rng)
    if "instance-noise" in mitigations:
        std = instance_noise_std(state.config, state.step)
        real = add_instance_noise(real, std, state.noise_rng)
        fake = add_instance_noise(fake, std, state.noise_rng)
    return real, fake


def discriminator_objective(
    state: TrainState, critic: Critic, real: Tensor, fake: Tensor
) -> Tensor:
    """D's loss (with the R1 penalty when on), for D's update and for unrolled steps alike."""
    loss = state.loss.discriminator_loss(critic, real, fake)
    if "r1" in state.config.mitigations:
        loss = loss + r1_penalty(critic, real, state.config.r1_gamma)
    return loss


def discriminator_step(state: TrainState) -> tuple[float, Tensor, Tensor, Critic]:
    """One D update on a fresh real batch and fresh fakes.

    Returns D's loss, D's inputs real [rows, ...] and fake [rows, ...] (fake keeps G's graph,
    so the generator step can reuse the last batch, as with a single D step) and the critic
    they were judged by (D; a conditional D given the batch's labels, which the fakes share
    with the real samples); rows is batch_size, or batch_size * pack when "pack" draws
    independent batches (pack_mode "batches": D then judges batch_size packed inputs).
    """
    placement, latent_dim = state.placement, state.config.latent_dim
    draws = pack_draws(state.config)
    rows = state.config.batch_size // placement.world_size * draws  # this rank's shard
    real, labels = real_batch(state, rows)  # [rows, ...], [rows] or None
    z = local_rows(lambda n: torch.randn(n, latent_dim, generator=state.latent_rng), rows)
    real, z = real.to(placement.device), z.to(placement.device)
    critic: Critic = state.discriminator
    with placement.autocast():
        if labels is None:
            fake = packed_fakes(state.generator, z, draws)
        else:
            fake = state.generator(z, labels)
            critic = partial(state.discriminator, labels=labels)
        real, fake = discriminator_inputs(state, real, fake)
        d_loss = discriminator_objective(state, critic, real, fake.detach())
    state.optimizer_d.zero_grad(set_to_none=True)
    d_loss.backward()
    average_gradients(state.discriminator.parameters())
    state.optimizer_d.step()
    return d_loss.item(), real, fake, critic


def restore(run_dir: Path) -> TrainState:
    """A GAN run's state as its checkpoint.pt left it (weights_only: tensors and plain values),
    on the CPU."""
    checkpoint = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = build(TrainConfig(**checkpoint["config"]))
    state.load_state_dict(checkpoint)
    return state


def real_batch(state: TrainState, rows: int) -> tuple[Tensor, Tensor | None]:
    """This rank's rows of a real batch [rows, ...] and, for a conditional GAN, their labels
    [rows] int64 on the device (each sample's mode's class: lab.conditioning.class_modes)."""
    dataset, rng, classes = state.dataset, state.data_rng, state.config.classes
    return labelled_rows(dataset, rng, rows, classes, state.placement.device)


def generator_objective(state: TrainState, real: Tensor, fake: Tensor, critic: Critic) -> Tensor:
    """G's loss: the adversarial one (adversarial_objective), plus mmd_weight x the batches'
    MMD^2 with "mmd" (kernel bandwidths MMD_BANDWIDTHS x mmd_bandwidth_scale)."""
    config = state.config
    loss = adversarial_objective(state, real, fake, critic)
    if "mmd" in config.mitigations:
        bandwidths = tuple(config.mmd_bandwidth_scale * s for s in MMD_BANDWIDTHS)
        loss = loss + config.mmd_weight * mmd_squared(real, fake, bandwidths)
    return loss


def adversarial_objective(state: TrainState, real: Tensor, fake: Tensor, critic: Critic) -> Tensor:
    """Feature matching, or the loss against the critic (D, or a conditional D given the
    batch's labels; unrolled when that mitigation is on)."""
    config, discriminator = state.config, state.discriminator
    if "feature-matching" in config.mitigations:  # replaces the adversarial loss (Salimans 2016)
        return feature_matching_loss(discriminator, real, fake)
    if "unrolled" not in config.mitigations:
        return state.loss.generator_loss(critic, fake)
    with full_precision(fake):  # differentiates through K differentiable D steps: float32
        critic = unrolled_critic(
            discriminator,
            state.optimizer_d,
            lambda unrolled: discriminator_objective(state, unrolled, real, fake),
            config.unroll_steps,
        )
        return state.loss.generator_loss(critic, fake)


def set_learning_rates(state: TrainState) -> None:
    """The step's learning rates: constant, or decayed linearly from lr_g/lr_d to 0 at `steps`
    (a function of the step alone, so a resumed run continues the same schedule)."""
    config = state.config
    scale = 1.0
    if config.lr_schedule == "linear" and config.steps > 0:
        scale = max(0.0, 1.0 - state.step / config.steps)
    for optimizer, lr in ((state.optimizer_g, config.lr_g), (state.optimizer_d, config.lr_d)):
        for group in optimizer.param_groups:
            group["lr"] = lr * scale


def generate(
    generator: nn.Module, n: int, latent_dim: int, seed: int, labels: np.ndarray | None = None
) -> np.ndarray:
    """G on service-compatible latents gaussian_latents(n, latent_dim, seed) (and a conditional
    G's labels [n] int64): [n, ...] float32 (points [n, d] or images [n, C, H, W]), in eval
    mode."""
    device = next(generator.parameters()).device
    inputs = [torch.from_numpy(gaussian_latents(n, latent_dim, seed)).to(device)]
    if labels is not None:
        inputs.append(torch.from_numpy(labels).to(device))
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        samples = generator(*inputs).cpu().numpy()
    generator.train(was_training)
    return samples


def training_loop(
    config: TrainConfig,
    run_dir: Path,
    resume: bool = True,
    progress: bool = True,
    placement: Placement | None = None,
) -> TrainState:
    """Train until `config.steps` generator updates, resuming from run_dir if asked.

    Returns the final state; run_dir receives config.json, checkpoint.pt and metrics.jsonl.
    """
    return train(build, config, run_dir, resume, progress, placement)
