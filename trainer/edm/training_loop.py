"""The EDM score-model recipe (Karras et al. 2022): build, train_step (the EDM loss, then the
EMA update), evaluate and the checkpoint's contents. The run directory, resume and the loop
itself are the shared scaffold's (trainer.runs).

The checkpoint holds the network, the EMA network, the optimizer, the step and the RNG states,
so resume is bit-exact. Initialisation runs under a forked, seeded RNG; data and noise come from
their own CPU torch.Generator, so a run is a function of its config on any device. The
Placement (trainer.devices) says where the step computes and which shard of the global batch
this torchrun rank trains on (trainer.distributed). Evaluations sample the EMA
network with the service's own sampler (lab.sampling.score_samples) and score with the shared
metric core.
"""

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lab.diagnostics.classes import Classes
from lab.samplers import DenoiseFunction, network_evaluations
from lab.sampling import ScoreSpec, score_samples
from trainer.conditioning import default_labels, labelled_rows
from trainer.datasets import GaussianMixture, ImageDataset, get_dataset
from trainer.devices import Placement, float32_outputs
from trainer.distributed import average_gradients, check_shards, mean_over_ranks
from trainer.edm.config import ScoreConfig, resolve_score_config
from trainer.edm.precond import Denoiser, edm_loss
from trainer.evaluation import REFERENCE_MODELS, diagnose_samples, papers_rule, protocol_numbers
from trainer.nets import SCORE_NETWORKS
from trainer.runs import derive_seeds, maybe_resume, train, update_ema

EVAL_SEED = 1  # the export-time diagnostics' seed too (trainer.edm.export)
EVAL_BATCH = 8192


@dataclass
class ScoreState:
    """Mutable state of one run; `step` counts completed Adam updates."""

    config: ScoreConfig
    dataset: GaussianMixture | ImageDataset
    data_scale: float
    architecture: dict[str, Any]
    denoiser: Denoiser
    ema: Denoiser
    optimizer: torch.optim.Optimizer
    data_rng: torch.Generator
    noise_rng: torch.Generator
    step: int = 0
    placement: Placement = field(default_factory=Placement)

    # The scaffold's plug-in (trainer.runs.Run): the recipe's step, evaluation and checkpoint.
    def train_step(self) -> dict[str, float]:
        """One Adam update of the EDM loss on a fresh batch, then the EMA update; the loss."""
        config, placement = self.config, self.placement
        batch = config.batch_size // placement.world_size  # this rank's shard
        rng, device = self.data_rng, placement.device
        y, labels = labelled_rows(self.dataset, rng, batch, config.classes, device)
        y = y * self.data_scale
        with placement.autocast():  # only the network F: preconditioning and loss stay float32
            loss = edm_loss(
                self.denoiser, y.to(device), config.p_mean, config.p_std, self.noise_rng, labels
            )
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.denoiser.parameters())
        self.optimizer.step()
        update_ema(self.ema, self.denoiser, config.ema_decay)
        self.step += 1
        return mean_over_ranks({"loss": loss.item()})

    def evaluate(
        self,
        n: int | None = None,
        seed: int = EVAL_SEED,
        steps: int | None = None,
        models_dir: Path = REFERENCE_MODELS,
        full: bool = False,
    ) -> dict[str, Any]:
        """The papers' protocol on the EMA network: modes covered, high quality, KL (and for a
        conditional model each class against its own modes: classes_healthy); `full`: the
        full report's verdict and feature numbers (coverage) instead of the mode rules'.

        n defaults to eval_samples, steps to the config's sample_steps, with its sampler. Image
        samples are judged by the classifier reference in models_dir (trainer.evaluation).
        """
        config = self.config
        n = n or config.eval_samples
        labels = self.labels(n, seed)
        samples = self.samples(n, seed, steps, labels)
        classes = None if labels is None else Classes(config.classes, labels)
        report = diagnose_samples(
            samples, config.dataset, models_dir, modes_only=not full, classes=classes
        )
        return protocol_numbers(report) | papers_rule(samples, self.dataset)

    def labels(self, n: int, seed: int) -> np.ndarray | None:
        """A conditional model's labels int64 [n] for (n, seed), as the service draws them by
        default (the data's class mix, lab.conditioning); None for an unconditional one."""
        return default_labels(self.dataset, self.config.classes, n, seed)

    def samples(
        self, n: int, seed: int, steps: int | None = None, labels: np.ndarray | None = None
    ) -> np.ndarray:
        """n samples of the EMA network by the service's sampler code (lab.sampling) from the
        noise of `seed`, `steps` (default sample_steps) of the config's sampler; a conditional
        model's samples are drawn for `labels` [n] int64 (default: labels(n, seed))."""
        config = self.config
        if labels is None:
            labels = self.labels(n, seed)
        denoise = torch_denoiser(self.ema.eval(), labels=labels)
        steps = steps or config.sample_steps
        return score_samples(denoise, score_spec(self), n, seed, steps, config.sampler)

    def state_dict(self) -> dict[str, Any]:
        """Everything load_state_dict and the export need; weights_only loadable."""
        return {
            "kind": "score",
            "step": self.step,
            "world_size": self.placement.world_size,
            "config": self.config.to_dict(),
            "architecture": self.architecture,
            "data_scale": self.data_scale,
            "denoiser": self.denoiser.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_rng": self.data_rng.get_state(),
            "noise_rng": self.noise_rng.get_state(),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Restore a state_dict (a checkpoint) into this freshly built state."""
        self.denoiser.load_state_dict(checkpoint["denoiser"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.data_rng.set_state(checkpoint["data_rng"])
        self.noise_rng.set_state(checkpoint["noise_rng"])
        self.step = int(checkpoint["step"])


def data_scale(dataset: GaussianMixture | ImageDataset, sigma_data: float) -> float:
    """The factor that brings the data to std sigma_data (EDM's recipe for the 2-D mixtures):
    sigma_data / (per-axis std of the mixture); 1 for images, already in [-1, 1] as in EDM."""
    if isinstance(dataset, ImageDataset):
        return 1.0
    weights = dataset.weights[:, None]
    mean = (weights * dataset.centres).sum(dim=0)
    spread = (weights * (dataset.centres - mean) ** 2).sum() / dataset.dim  # per-axis variance
    noise = dataset.std**2 * dataset.noisy_axes / dataset.dim  # per-axis, over every axis
    return sigma_data / math.sqrt(float(spread) + noise)


def architecture_spec(config: ScoreConfig, dataset: GaussianMixture | ImageDataset) -> dict:
    """The card's `architecture` object: registered name and plain-int constructor args."""
    if config.arch == "unet":
        if not isinstance(dataset, ImageDataset):
            raise ValueError(f"arch 'unet' needs an image dataset, not {config.dataset!r}")
        args = {"channels": dataset.channels, "width": config.width}
        return {"name": "unet", "args": args | class_args(config)}
    if isinstance(dataset, ImageDataset):
        raise ValueError(f"arch 'mlp' is for points; use 'unet' for {config.dataset!r}")
    args = {"data_dim": dataset.dim, "width": config.width, "depth": config.depth}
    args["input_frequencies"] = config.input_frequencies
    if config.axis_gain:  # only where set: the other cards' args are what they were
        args["axis_gain"] = config.axis_gain
    return {"name": config.arch, "args": args | class_args(config)}


def class_args(config: ScoreConfig) -> dict[str, int]:
    """A conditional network's `classes` argument; none for an unconditional one, whose
    architecture (and card) stay as they were."""
    return {"classes": config.classes} if config.classes else {}


def build_denoiser(architecture: dict, sigma_data: float) -> Denoiser:
    """D(x, sigma) around the registered network described by `architecture`."""
    network = SCORE_NETWORKS.get(architecture["name"])(**architecture["args"])
    return Denoiser(network, sigma_data)


def build(config: ScoreConfig, placement: Placement | None = None) -> ScoreState:
    """Dataset, denoiser (seeded init on the CPU, then moved to the placement's device) and its
    EMA copy, Adam, and the data/noise RNGs (CPU). ValueError when the batch does not split
    across the placement's processes."""
    placement = placement or Placement()
    check_shards(config, placement.world_size)
    init_seed, data_seed, noise_seed = derive_seeds(config.seed, 3)
    dataset = get_dataset(config.dataset)
    architecture = architecture_spec(config, dataset)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(init_seed)
        denoiser = build_denoiser(architecture, config.sigma_data).to(placement.device)
    if placement.amp:
        float32_outputs(denoiser.network)  # F's output float32: c_skip x + c_out F in float32
    ema = copy.deepcopy(denoiser).eval().requires_grad_(False)
    betas = (config.beta1, config.beta2)
    return ScoreState(
        config=config,
        dataset=dataset,
        data_scale=data_scale(dataset, config.sigma_data),
        architecture=architecture,
        denoiser=denoiser,
        ema=ema,
        optimizer=torch.optim.Adam(denoiser.parameters(), lr=config.lr, betas=betas),
        data_rng=torch.Generator().manual_seed(data_seed),
        noise_rng=torch.Generator().manual_seed(noise_seed),
        placement=placement,
    )


def learning_rate(config: ScoreConfig, step: int) -> float:
    """lr at `step`: constant, or cosine from lr down to 0 at `steps`."""
    if config.lr_schedule == "constant" or config.steps == 0:
        return config.lr
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))


def score_spec(state: ScoreState) -> ScoreSpec:
    """What the service's sampler needs, as the card will state it."""
    config = state.config
    shape = state.dataset.shape if isinstance(state.dataset, ImageDataset) else (state.dataset.dim,)
    return ScoreSpec(tuple(shape), config.sigma_min, config.sigma_max, config.rho, state.data_scale)


def torch_denoiser(
    denoiser: nn.Module, batch: int = EVAL_BATCH, labels: np.ndarray | None = None
) -> DenoiseFunction:
    """The torch D as a lab.samplers Denoiser (numpy float32 in and out, no grad), on the
    device of D's weights; a conditional D is given labels [n] int64, row i's class for the
    whole trajectory (x then has those n rows)."""
    device = next(denoiser.parameters()).device

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    def denoise(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        parts = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                rows = slice(i, i + batch)
                extra = () if labels is None else (on_device(labels[rows]),)
                parts.append(denoiser(on_device(x[rows]), on_device(sigma[rows]), *extra))
        return torch.cat(parts).cpu().numpy()

    return denoise


def score_training_loop(
    config: ScoreConfig,
    run_dir: Path,
    resume: bool = True,
    progress: bool = True,
    placement: Placement | None = None,
) -> ScoreState:
    """Train until `config.steps` updates, resuming from run_dir if asked; the final state.

    run_dir receives config.json, checkpoint.pt and metrics.jsonl.
    """
    return train(build, config, run_dir, resume, progress, placement)


def train_score_preset(
    preset: str,
    run_dir: Path,
    overrides: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = False,
) -> ScoreState:
    """Resolve a score preset (defaults < preset < overrides) and train it into run_dir."""
    return score_training_loop(resolve_score_config(preset, overrides), run_dir, resume, progress)


def load_run(run_dir: Path) -> ScoreState:
    """A run directory's final state (its checkpoint loaded), for evaluation and export."""
    checkpoint = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = build(ScoreConfig(**checkpoint["config"]))
    maybe_resume(state, Path(run_dir), resume=True)
    return state


def evaluate_score_run(
    run_dir: Path,
    seed: int = EVAL_SEED,
    n: int = 2500,
    steps: int | None = None,
    models_dir: Path = REFERENCE_MODELS,
) -> dict[str, Any]:
    """The final EMA model of run_dir on the papers' protocol: modes_covered, modes_total,
    high_quality_fraction, kl (and nfe, the network evaluations per sample)."""
    state = load_run(run_dir)
    steps = steps or state.config.sample_steps
    nfe = network_evaluations(steps, state.config.sampler)
    return {**state.evaluate(n, seed, steps, models_dir), "nfe": nfe}
