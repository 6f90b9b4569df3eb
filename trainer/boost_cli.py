"""The `boost` subcommand: an AdaGAN ensemble (trainer.boosting) from a GAN preset, its members
trained one after another, exported with the ensemble card when --name is given."""

import argparse
from pathlib import Path

from trainer.boosting import CLASSIFIER_STEPS, POOL_SIZE, boost, export_boosted
from trainer.cli_tools import add_command, or_usage_error, positive_int
from trainer.config import resolve_config
from trainer.families import preset_family


def add_boost_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The parser of `boost`; the caller adds the config flags (trainer.cli.add_config_flags),
    which override the preset's recipe for every member, and sets `config_overrides`, the
    function that reads them."""
    help = "AdaGAN: train GAN members one after another on reweighted data; an ensemble of them"
    command = add_command(commands, "boost", help, run_boost)
    command.add_argument("preset", help="a GAN preset (each member's recipe)")
    command.add_argument("--members", type=positive_int, required=True, help="members to train")
    command.add_argument("--out", type=Path, required=True, help="runs, pools and boost.json")
    command.add_argument("--pool", type=positive_int, default=POOL_SIZE, help="training points")
    command.add_argument(
        "--classifier-steps", type=positive_int, default=CLASSIFIER_STEPS, help="reweighting D"
    )
    command.add_argument("--name", help="export the members as NAME-m<t> and the ensemble NAME")
    command.add_argument("--models-dir", type=Path, default=Path("models"))
    command.add_argument("--no-progress", action="store_true", help="no progress bars")
    return command


def run_boost(args: argparse.Namespace) -> int:
    """Resolve the preset (a GAN's) with the flags (member t: --seed + t), boost, and export
    when --name is given. args.config_overrides: the flags' reader trainer.cli gives."""
    family = or_usage_error(args, preset_family, args.preset)
    if family.kind != "gan":
        args.parser.error(f"{args.preset}: boost trains GAN members; name a GAN preset")
    config = or_usage_error(args, resolve_config, args.preset, args.config_overrides(args, family))
    summary = or_usage_error(
        args,
        boost,
        config,
        args.members,
        args.out,
        args.pool,
        args.classifier_steps,
        not args.no_progress,
    )
    print(f"weights: {', '.join(f'{w:.4g}' for w in summary['weights'])}")
    if args.name:
        print(or_usage_error(args, export_boosted, summary, args.models_dir, args.name))
    return 0
