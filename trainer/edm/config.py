"""Score-model training configuration: the defaults live once, in `ScoreConfig`.

Resolution, as for GANs (trainer.settings): ScoreConfig defaults < preset
(trainer/presets/<name>.json with "kind": "score", or any JSON file) < explicit overrides.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainer.conditioning import check_class_split
from trainer.datasets import DATASETS
from trainer.datasets.registry import check_score_dataset
from trainer.nets import SCORE_NETWORKS
from trainer.settings import as_field_types, check_ranges, check_same_recipe, resolve_fields

KIND = "score"
RESUMABLE_FIELDS = ("log_every", "eval_every", "snapshot_every", "eval_samples")
LR_SCHEDULES = ("constant", "cosine")
SAMPLER_NAMES = ("euler", "heun")  # lab.samplers.SAMPLERS


@dataclass(frozen=True)
class ScoreConfig:
    """Everything a score-model run depends on. Noise levels are in the units of the scaled
    data (std sigma_data); lr per Adam step."""

    kind: str = KIND  # tells a preset or run dir apart from a GAN's (TrainConfig)
    dataset: str = "ring8"  # registered dataset name (trainer.datasets.DATASETS)
    arch: str = "mlp"  # registered score network (trainer.nets.edm.SCORE_NETWORKS)
    width: int = 256  # mlp: hidden units; unet: channels at 8x8 (twice that at 4x4)
    depth: int = 4  # mlp: residual blocks (unused by unet)
    input_frequencies: int = 0  # mlp: sin/cos(2^k pi x_in) input features, k < this (0: none)
    axis_gain: int = 0  # mlp: 1 adds a per-axis, noise-conditioned gain on x_in (high dimension)
    # A class-conditional denoiser D(x, sigma, labels) (trainer.nets.edm.NoiseEmbedding): K
    # classes splitting the dataset's modes in order (lab.conditioning.class_modes); 0: none.
    classes: int = 0
    sigma_data: float = 0.5  # EDM: data scaled to this std; c_skip, c_out, c_in use it
    p_mean: float = -1.2  # EDM: ln(sigma) ~ N(P_mean, P_std^2) in training; lower for sharp modes
    p_std: float = 1.2
    sigma_min: float = 0.002  # the sampler's time steps (Eq. 5), exported into the card
    sigma_max: float = 80.0  # EDM's images value; 10-20 is plenty for the 2-D mixtures
    rho: float = 7.0
    sample_steps: int = 18  # the card's default steps (18 Heun steps = 35 evaluations)
    sampler: str = "heun"  # the card's default sampler
    batch_size: int = 512
    steps: int = 20_000  # Adam updates
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # "constant" or "cosine" (to 0 at `steps`)
    beta1: float = 0.9
    beta2: float = 0.999
    ema_decay: float = 0.999  # EMA of the weights, per step; the EMA network is exported
    seed: int = 0
    log_every: int = 100  # steps between metrics.jsonl lines
    eval_every: int = 0  # steps between diagnostics, and at the end (0: never)
    snapshot_every: int = 1000  # steps between checkpoints, and at the end (0: only there)
    eval_samples: int = 2500  # the papers' protocol: 2,500 samples per evaluation

    def __post_init__(self) -> None:
        check_score_config(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what config.json and the card's `training` hold)."""
        return dataclasses.asdict(self)

    def check_resumable(self, saved: dict[str, Any]) -> None:
        """ValueError if a checkpoint's config `saved` is another recipe than this one."""
        resumable = set(RESUMABLE_FIELDS)
        if self.lr_schedule == "constant":
            resumable.add("steps")  # the cosine schedule spans `steps`: a new length, a new recipe
        # a field added since a checkpoint was written has its old behaviour as its default
        check_same_recipe(ScoreConfig().to_dict() | saved, self.to_dict(), resumable)


def check_score_config(config: ScoreConfig) -> None:
    """Validate names and ranges; ValueError with a readable message otherwise."""
    choices = {
        "kind": [KIND],
        "dataset": DATASETS.names(),
        "arch": SCORE_NETWORKS.names(),
        "lr_schedule": list(LR_SCHEDULES),
        "sampler": list(SAMPLER_NAMES),
    }
    for field, names in choices.items():
        if getattr(config, field) not in names:
            raise ValueError(f"unknown {field} {getattr(config, field)!r}; choose from {names}")
    check_score_dataset(config.dataset)
    check_ranges(
        config,
        at_least_one=("width", "depth", "sample_steps", "batch_size", "log_every", "eval_samples"),
        non_negative=("steps", "seed", "eval_every", "snapshot_every", "input_frequencies"),
        positive=("sigma_data", "p_std", "sigma_min", "rho", "lr"),
    )
    if not config.sigma_max > config.sigma_min:
        raise ValueError(f"sigma_max must exceed sigma_min, got {config.sigma_max}")
    check_ranges(config, below_one=("beta1", "beta2", "ema_decay"), non_negative=("classes",))
    if config.axis_gain not in (0, 1):
        raise ValueError(f"axis_gain is 0 or 1, got {config.axis_gain}")
    if config.axis_gain and config.arch != "mlp":
        raise ValueError(f"axis_gain is an 'mlp' option, not {config.arch!r}'s")
    check_class_split(config.dataset, config.classes, "score model")


def resolve_score_config(
    preset: str | None = None, overrides: dict[str, Any] | None = None
) -> ScoreConfig:
    """Defaults < preset < overrides (None values in overrides are skipped)."""
    fields = resolve_fields(ScoreConfig, preset, overrides)
    return ScoreConfig(**as_field_types(ScoreConfig, fields))
