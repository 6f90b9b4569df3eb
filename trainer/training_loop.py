"""The GAN training loop, as named steps: build, maybe_resume, train_step, evaluate,
maybe_snapshot, log.

A run directory holds config.json (the resolved config), checkpoint.pt (everything needed to
resume bit-exactly: weights, optimizer moments, step, RNG states) and metrics.jsonl (one JSON
line per logged step). No global RNG is used: initialisation runs under a forked, seeded RNG and
data, latents and the losses'/mitigations' noise (WGAN-GP's interpolation, instance noise) come
from their own torch.Generator, so a run is a function of its config.
"""

import copy
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from lab.noise import gaussian_latents
from trainer.config import IMAGE_ARCHITECTURES, TrainConfig, with_defaults
from trainer.datasets import GaussianMixture, get_dataset
from trainer.evaluation import diagnose_samples, protocol_numbers
from trainer.images import ImageDataset
from trainer.losses import Critic, GANLoss, get_loss
from trainer.mitigations import (
    add_instance_noise,
    diff_augment,
    discriminator_args,
    feature_matching_loss,
    instance_noise_std,
    r1_penalty,
    unrolled_critic,
    update_average,
)
from trainer.nets import ARCHITECTURES

# Fields that may change between a run and its resumption (how long and how often, not what).
RESUMABLE_FIELDS = ("steps", "log_every", "eval_every", "snapshot_every", "eval_samples")
Dataset = GaussianMixture | ImageDataset
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

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that is evaluated and exported: G's weight average with "g-ema"."""
        return self.generator if self.generator_average is None else self.generator_average


def architecture_spec(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """The card's `architecture` object: registered name and plain-int constructor args."""
    args: dict[str, Any] = {"latent_dim": config.latent_dim}
    if config.arch in IMAGE_ARCHITECTURES:
        args |= {"channels": dataset.channels, "width": config.conv_width}
    else:
        args |= {"data_dim": dataset.dim}
        args |= {"g_hidden": config.g_hidden, "g_depth": config.g_depth}
        args |= {"d_hidden": config.d_hidden, "d_depth": config.d_depth}
    args |= discriminator_args(config)  # D's mitigations; none for a plain D
    return {"name": config.arch, "args": args}


def derive_seeds(seed: int, count: int) -> list[int]:
    """`count` independent 63-bit seeds from one run seed (numpy SeedSequence)."""
    state = np.random.SeedSequence(seed).generate_state(count, dtype=np.uint64)
    return [int(s) >> 1 for s in state]


def build(config: TrainConfig) -> TrainState:
    """Dataset, networks (seeded init), loss, Adam optimizers and the data/latent/noise RNGs."""
    init_seed, data_seed, latent_seed, noise_seed = derive_seeds(config.seed, 4)
    dataset = get_dataset(config.dataset)
    architecture = architecture_spec(config, dataset)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(init_seed)
        generator, discriminator = ARCHITECTURES.get(config.arch)(**architecture["args"])
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
    )


def check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    """ValueError if the checkpoint was trained with a different recipe than `config`."""
    resumable = set(RESUMABLE_FIELDS)
    if "instance-noise" in config.mitigations or config.lr_schedule != "constant":
        resumable.discard("steps")  # annealed over `steps`: a new length, a new schedule
    check_same_recipe(with_defaults(saved), config.to_dict(), resumable)


def check_same_recipe(saved: dict[str, Any], current: dict[str, Any], resumable: set[str]) -> None:
    """ValueError naming every field outside `resumable` that differs between a checkpoint's
    config and the current one (shared by the GAN and the score-model loops)."""
    changed = sorted(k for k in current if k not in resumable and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"cannot resume: config changed ({details}); use a new run dir")


def resumable_checkpoint(
    run_dir: Path, resume: bool, check: Callable[[dict[str, Any]], None]
) -> dict[str, Any] | None:
    """run_dir/checkpoint.pt when resuming and it exists, after check(its config) (which raises
    ValueError for another recipe); None otherwise. Shared by the GAN and score-model loops."""
    path = Path(run_dir) / "checkpoint.pt"
    if not (resume and path.is_file()):
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    check(checkpoint["config"])
    return checkpoint


def check_run_dir(config: TrainConfig, run_dir: Path, resume: bool = True) -> None:
    """ValueError if training_loop(config, run_dir, resume) would resume another recipe."""
    resumable_checkpoint(run_dir, resume, lambda saved: check_resumable(saved, config))


def maybe_resume(state: TrainState, run_dir: Path, resume: bool) -> None:
    """Load run_dir/checkpoint.pt into `state` if it exists and `resume` is set."""
    checkpoint = resumable_checkpoint(
        run_dir, resume, lambda saved: check_resumable(saved, state.config)
    )
    if checkpoint is None:
        return
    state.generator.load_state_dict(checkpoint["generator"])
    state.discriminator.load_state_dict(checkpoint["discriminator"])
    state.optimizer_g.load_state_dict(checkpoint["optimizer_g"])
    state.optimizer_d.load_state_dict(checkpoint["optimizer_d"])
    state.data_rng.set_state(checkpoint["data_rng"])
    state.latent_rng.set_state(checkpoint["latent_rng"])
    if "noise_rng" in checkpoint:  # absent from checkpoints written before it existed
        state.noise_rng.set_state(checkpoint["noise_rng"])
    if state.generator_average is not None:
        state.generator_average.load_state_dict(checkpoint["generator_average"])
    state.step = int(checkpoint["step"])


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


def discriminator_step(state: TrainState) -> tuple[float, Tensor, Tensor]:
    """One D update on a fresh real batch and fresh fakes.

    Returns D's loss and D's inputs real [batch, ...] and fake [batch, ...] (fake keeps G's
    graph, so the generator step can reuse the last batch, as with a single D step).
    """
    batch, latent_dim = state.config.batch_size, state.config.latent_dim
    real = state.dataset.sample(batch, state.data_rng)  # [batch, data_dim]
    z = torch.randn(batch, latent_dim, generator=state.latent_rng)  # [batch, latent_dim]
    real, fake = discriminator_inputs(state, real, state.generator(z))
    d_loss = discriminator_objective(state, state.discriminator, real, fake.detach())
    state.optimizer_d.zero_grad(set_to_none=True)
    d_loss.backward()
    state.optimizer_d.step()
    return d_loss.item(), real, fake


def generator_objective(state: TrainState, real: Tensor, fake: Tensor) -> Tensor:
    """G's loss: feature matching, or the loss against D (unrolled when that mitigation is on)."""
    config, discriminator = state.config, state.discriminator
    if "feature-matching" in config.mitigations:  # replaces the adversarial loss (Salimans 2016)
        return feature_matching_loss(discriminator, real, fake)
    critic: Critic = discriminator
    if "unrolled" in config.mitigations:
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


def train_step(state: TrainState) -> dict[str, float]:
    """`d_steps` D updates, then one G update on the last fake batch; returns both losses."""
    set_learning_rates(state)
    for _ in range(state.config.d_steps):
        d_loss, real, fake = discriminator_step(state)
    state.discriminator.requires_grad_(False)  # G's step needs no gradient for D's weights
    g_loss = generator_objective(state, real, fake)
    state.optimizer_g.zero_grad(set_to_none=True)
    g_loss.backward()
    state.optimizer_g.step()
    if state.generator_average is not None:
        update_average(state.generator_average, state.generator, state.config.g_ema_decay)
    state.discriminator.requires_grad_(True)
    state.step += 1
    return {"d_loss": d_loss, "g_loss": g_loss.item()}


def generate(generator: nn.Module, n: int, latent_dim: int, seed: int) -> np.ndarray:
    """G on service-compatible latents gaussian_latents(n, latent_dim, seed): [n, ...] float32
    (points [n, d] or images [n, C, H, W]), in eval mode."""
    z = torch.from_numpy(gaussian_latents(n, latent_dim, seed))
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        samples = generator(z).numpy()
    generator.train(was_training)
    return samples


def evaluate(state: TrainState) -> dict[str, Any]:
    """The papers' protocol on `eval_samples` samples: modes covered, high quality, KL."""
    config = state.config
    samples = generate(state.sampling_generator, config.eval_samples, config.latent_dim, EVAL_SEED)
    report = diagnose_samples(samples, state.dataset.name, modes_only=True)
    return protocol_numbers(report)


def checkpoint_dict(state: TrainState) -> dict[str, Any]:
    """Everything maybe_resume needs; tensors and plain values only (weights_only loadable).
    With "g-ema" it also holds `generator_average`, which export loads instead of `generator`."""
    average = state.generator_average
    return ({} if average is None else {"generator_average": average.state_dict()}) | {
        "step": state.step,
        "config": state.config.to_dict(),
        "architecture": state.architecture,
        "generator": state.generator.state_dict(),
        "discriminator": state.discriminator.state_dict(),
        "optimizer_g": state.optimizer_g.state_dict(),
        "optimizer_d": state.optimizer_d.state_dict(),
        "data_rng": state.data_rng.get_state(),
        "latent_rng": state.latent_rng.get_state(),
        "noise_rng": state.noise_rng.get_state(),
    }


def maybe_snapshot(state: TrainState, run_dir: Path, force: bool = False) -> bool:
    """Write run_dir/checkpoint.pt atomically every `snapshot_every` steps (or when forced)."""
    every = state.config.snapshot_every
    if not (force or (every > 0 and state.step % every == 0)):
        return False
    temporary = run_dir / "checkpoint.pt.tmp"
    torch.save(checkpoint_dict(state), temporary)
    os.replace(temporary, run_dir / "checkpoint.pt")
    return True


def is_due(step: int, every: int, last: bool) -> bool:
    """True on multiples of `every` (> 0) and on the last step."""
    return last or (every > 0 and step % every == 0)


def finite_or_none(value: Any) -> Any:
    """NaN and inf -> None (strict JSON has neither); anything else unchanged."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def log(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to run_dir/metrics.jsonl (NaN/inf written as null)."""
    clean = {k: finite_or_none(v) for k, v in record.items()}
    with open(run_dir / "metrics.jsonl", "a") as file:
        file.write(json.dumps(clean) + "\n")


def truncate_log(run_dir: Path, step: int) -> None:
    """Drop metrics.jsonl lines past `step` (written after the checkpoint we resume from)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def write_config(config: TrainConfig, run_dir: Path) -> None:
    """run_dir/config.json: the resolved config."""
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def training_loop(
    config: TrainConfig, run_dir: Path, resume: bool = True, progress: bool = True
) -> TrainState:
    """Train until `config.steps` generator updates, resuming from run_dir if asked.

    Returns the final state; run_dir receives config.json, checkpoint.pt and metrics.jsonl.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = build(config)
    maybe_resume(state, run_dir, resume)
    truncate_log(run_dir, state.step)
    write_config(config, run_dir)
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc=run_dir.name)
    while state.step < config.steps:
        losses = train_step(state)
        last = state.step == config.steps
        bar.update(1)
        evaluate_now = config.eval_every > 0 and is_due(state.step, config.eval_every, last)
        if evaluate_now or is_due(state.step, config.log_every, last):
            record = {"step": state.step, **losses}
            if evaluate_now:
                record |= evaluate(state)
            log(run_dir, record)
            bar.set_postfix({k: round(v, 3) for k, v in record.items() if isinstance(v, float)})
        maybe_snapshot(state, run_dir, force=last)
    bar.close()
    return state
