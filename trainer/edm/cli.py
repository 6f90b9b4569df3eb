"""The score-model side of `python -m trainer train` and `export` (see trainer/cli.py).

`train` dispatches here when the preset (or JSON file) says "kind": "score"; the flags of
ScoreConfig fields the GAN config lacks are added to the same `train` parser, and GAN-only
flags given with a score preset are usage errors.
"""

import argparse
import dataclasses
import json
from pathlib import Path

from trainer.config import TrainConfig
from trainer.edm.config import ScoreConfig, preset_kind, resolve_score_config

GAN_FIELDS = {field.name for field in dataclasses.fields(TrainConfig)}
SCORE_FIELDS = [f for f in dataclasses.fields(ScoreConfig) if f.name != "kind"]


def add_score_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ScoreConfig field the GAN flags do not already cover; default None."""
    for field in SCORE_FIELDS:
        if field.name in GAN_FIELDS:
            continue
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=field.type,
            default=None,
            metavar=field.type.__name__.upper(),
            help=f"score presets: default {field.default!r} (or the preset's)",
        )


def is_score_preset(preset: str) -> bool:
    """True when the preset or JSON file is a score model's (False for unknown presets, which
    the GAN path reports)."""
    try:
        return preset_kind(preset) == "score"
    except (ValueError, json.JSONDecodeError):
        return False


def run_score_train(args: argparse.Namespace) -> int:
    """Resolve the ScoreConfig (defaults < preset < flags), then call score_training_loop."""
    parser = args.parser
    score_names = {field.name for field in SCORE_FIELDS}
    gan_only = sorted(
        name for name in GAN_FIELDS - score_names if getattr(args, name, None) is not None
    )
    if gan_only:
        parser.error(f"{', '.join(gan_only)}: GAN settings, not used by score presets")
    overrides = {name: getattr(args, name, None) for name in score_names}
    try:
        config = resolve_score_config(args.preset, overrides)
    except ValueError as error:
        parser.error(str(error))
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from trainer.cli import train_in_run_dir
    from trainer.edm.training_loop import check_run_dir, score_training_loop  # heavy imports

    return train_in_run_dir(args, config, check_run_dir, score_training_loop)


def is_score_run(run_dir: Path) -> bool:
    """True when run_dir/config.json is a score model's."""
    path = Path(run_dir) / "config.json"
    return path.is_file() and json.loads(path.read_text()).get("kind") == "score"


def run_score_export(args: argparse.Namespace) -> int:
    """Call export_score and print the card's path."""
    from trainer.edm.export import export_score

    try:
        card = export_score(
            args.run_dir, args.models_dir, args.name, args.version, args.description
        )
    except ValueError as error:  # bad name, existing version, a non-score card of that name
        args.parser.error(str(error))
    print(card)
    return 0
