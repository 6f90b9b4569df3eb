"""VAE training configuration: the defaults live once, in `VAEConfig`.

Resolution, as for GANs and score models (trainer.settings): VAEConfig defaults < preset
(trainer/presets/<name>.json with "kind": "vae", or any JSON file) < explicit overrides.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainer.datasets import DATASETS, IMAGE_DATASETS
from trainer.nets import VAE_NETWORKS
from trainer.settings import as_field_types, check_ranges, check_same_recipe, resolve_fields

KIND = "vae"
RESUMABLE_FIELDS = ("steps", "log_every", "eval_every", "snapshot_every", "eval_samples")


@dataclass(frozen=True)
class VAEConfig:
    """Everything a VAE run depends on. Sizes in units, lr per Adam step."""

    kind: str = KIND  # tells a preset or run dir apart from a GAN's (TrainConfig)
    dataset: str = "ring8"  # registered dataset name (trainer.datasets.DATASETS)
    arch: str = "mlp"  # registered VAE network (trainer.nets.VAE_NETWORKS): "mlp" or "conv"
    latent_dim: int = 2
    hidden: int = 400  # mlp: encoder and decoder width (the GAN's G: 4 x 400 ReLU)
    depth: int = 4  # mlp: hidden layers of the encoder and of the decoder
    conv_width: int = 64  # conv: channels of the 8x8 layers (4x4 layers: twice), as "dcgan"
    beta: float = 1.0  # weight of KL(q(z|x) || N(0, I)); 1 is the ELBO (beta-VAE: > 1)
    # Steps over which the KL weight rises linearly from 0 to beta (Bowman et al. 2016; 0: from
    # the start). Without it the 2-D mixtures' runs settle at once on the posterior-collapsed
    # optimum: z ignored, every sample the data mean, sigma_x the data's std.
    kl_warmup: int = 1000
    min_decoder_std: float = 1e-3  # floor of the learned decoder scale sigma_x (data units)
    batch_size: int = 100
    steps: int = 5000  # Adam updates
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    seed: int = 0
    log_every: int = 100  # steps between metrics.jsonl lines
    eval_every: int = 0  # steps between diagnostics, and at the end (0: never)
    snapshot_every: int = 1000  # steps between checkpoints, and at the end (0: only there)
    eval_samples: int = 2500  # the papers' protocol: 2,500 samples per evaluation

    def __post_init__(self) -> None:
        check_vae_config(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what config.json and the card's `training` hold)."""
        return dataclasses.asdict(self)

    def check_resumable(self, saved: dict[str, Any]) -> None:
        """ValueError if a checkpoint's config `saved` is another recipe than this one (the lr
        is constant, so a run may be resumed for more steps)."""
        check_same_recipe(saved, self.to_dict(), set(RESUMABLE_FIELDS))


def check_vae_config(config: VAEConfig) -> None:
    """Validate names and ranges; ValueError with a readable message otherwise."""
    choices = {"kind": [KIND], "dataset": DATASETS.names(), "arch": VAE_NETWORKS.names()}
    for field, names in choices.items():
        if getattr(config, field) not in names:
            raise ValueError(f"unknown {field} {getattr(config, field)!r}; choose from {names}")
    images = config.dataset in IMAGE_DATASETS
    if images != (config.arch == "conv"):
        fit = "'conv' for" if images else "'mlp' for the points of"
        raise ValueError(f"arch {config.arch!r} does not fit {config.dataset!r}: use {fit} it")
    check_ranges(
        config,
        at_least_one=("latent_dim", "hidden", "depth", "conv_width", "batch_size", "log_every")
        + ("eval_samples",),
        non_negative=("steps", "seed", "eval_every", "snapshot_every", "kl_warmup"),
        positive=("beta", "min_decoder_std", "lr"),
        below_one=("beta1", "beta2"),
    )


def resolve_vae_config(
    preset: str | None = None, overrides: dict[str, Any] | None = None
) -> VAEConfig:
    """Defaults < preset < overrides (None values in overrides are skipped)."""
    fields = resolve_fields(VAEConfig, preset, overrides)
    return VAEConfig(**as_field_types(VAEConfig, fields))
