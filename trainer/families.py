"""Model families by kind: what `python -m trainer train/export` and the table need of each.

A family is its config dataclass (defaults, range checks, resume rule), its recipe's `build`
(config -> a trainer.runs.Run the shared loop drives) and its exporter (which calls
trainer.onnx_export.export_model with its own version writer and card). A new family (the VAE
in trainer/vae/ was the last) writes those three pieces and adds one entry here.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig, resolve_config
from trainer.devices import Placement
from trainer.edm.config import ScoreConfig, resolve_score_config
from trainer.edm.export import export_score
from trainer.edm.training_loop import build as build_score
from trainer.export import export_gan
from trainer.registry import Registry
from trainer.runs import Run, RunConfig
from trainer.settings import preset_kind
from trainer.training_loop import build as build_gan
from trainer.vae.config import VAEConfig, resolve_vae_config
from trainer.vae.export import export_vae
from trainer.vae.training_loop import build as build_vae

DEFAULT_KIND = "gan"  # presets and run dirs without a "kind" (GANs predate the field)


@dataclass(frozen=True)
class Family:
    """One model family, as the CLI and the table drive it."""

    kind: str  # a preset's and config.json's "kind"
    label: str  # how messages name its settings
    config: type  # its frozen config dataclass: the defaults, and the `train` flags
    resolve: Callable[[str | None, dict[str, Any] | None], RunConfig]  # defaults < preset < flags
    build: Callable[[Any, Placement], Run]  # (config, placement) -> a fresh state to train
    # (run_dir, models_dir, name, version, description) -> the card's path
    export: Callable[[Path, Path, str, int | None, str | None], Path]

    def field_names(self) -> set[str]:
        """The config's settable fields (a score config's constant `kind` is not one)."""
        return {field for field in self.config.__dataclass_fields__ if field != "kind"}


FAMILIES: Registry[Family] = Registry("model family")
for family in (
    Family("gan", "GAN", TrainConfig, resolve_config, build_gan, export_gan),
    Family("score", "score-model", ScoreConfig, resolve_score_config, build_score, export_score),
    Family("vae", "VAE", VAEConfig, resolve_vae_config, build_vae, export_vae),
):
    FAMILIES.register(family.kind)(family)


def ordered_families() -> list[Family]:
    """Every family, the default (GAN) first: the order of the `train` flags."""
    kinds = sorted(FAMILIES.names(), key=lambda kind: (kind != DEFAULT_KIND, kind))
    return [FAMILIES.get(kind) for kind in kinds]


def preset_family(preset: str) -> Family:
    """The family a preset (or JSON file) names; the default family for presets that name
    none, or that do not exist or parse (its resolution then reports them)."""
    try:
        kind = preset_kind(preset)
    except (ValueError, json.JSONDecodeError):
        kind = DEFAULT_KIND
    return FAMILIES.get(kind if kind in FAMILIES else DEFAULT_KIND)


def run_family(run_dir: Path) -> Family:
    """The family whose config.json is in run_dir (the default family when it names none)."""
    path = Path(run_dir) / "config.json"
    kind = json.loads(path.read_text()).get("kind") if path.is_file() else None
    return FAMILIES.get(kind if kind in FAMILIES else DEFAULT_KIND)
