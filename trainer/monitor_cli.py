"""The command line of the collapse monitor: `train`'s watching flags (--keep-snapshots,
--stop-on-collapse, --tensorboard), `export`'s choice of snapshot (--step S or --best) and the
`plot` subcommand (RUN_DIR's curves as a PNG)."""

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainer.cli_tools import add_command, or_usage_error, positive_int
from trainer.collapse import read_monitor
from trainer.monitor import MonitorOptions
from trainer.plot import plot_run
from trainer.snapshots import snapshot_file, snapshot_run_dir
from trainer.tensorboard_sink import summary_writer_class


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_monitor_flags(train: argparse.ArgumentParser) -> None:
    """`train`'s flags for how a session is watched (MonitorOptions: not part of the recipe)."""
    train.add_argument(
        "--keep-snapshots",
        type=non_negative_int,
        default=MonitorOptions.keep_snapshots,
        metavar="N",
        help="keep numbered snapshots (RUN_DIR/snapshots/) at every checkpoint and evaluation: "
        "the N newest plus the best-coverage one, for `export --step/--best` (default 0: none)",
    )
    train.add_argument(
        "--stop-on-collapse",
        action="store_true",
        help="end the run at the evaluation where the monitor dates the start of collapse "
        "(RUN_DIR/monitor.json)",
    )
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard events to RUN_DIR/tensorboard/ (needs the tensorboard "
        "package)",
    )


def monitor_options(args: argparse.Namespace) -> MonitorOptions:
    """The parsed flags as MonitorOptions; --tensorboard without the package, and
    --stop-on-collapse under torchrun (only rank 0 evaluates), are usage errors."""
    if args.stop_on_collapse and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        args.parser.error("--stop-on-collapse needs a one-process run (not torchrun)")
    if args.tensorboard:
        try:
            summary_writer_class()
        except ImportError as error:
            args.parser.error(str(error))
    return MonitorOptions(args.keep_snapshots, args.stop_on_collapse, args.tensorboard)


def add_snapshot_choice(export: argparse.ArgumentParser) -> None:
    """`export --step S` or `--best`: a numbered snapshot instead of the final checkpoint."""
    which = export.add_mutually_exclusive_group()
    which.add_argument(
        "--step",
        type=positive_int,
        help="export the numbered snapshot of step S (--keep-snapshots)",
    )
    which.add_argument(
        "--best",
        action="store_true",
        help="export the snapshot of the best-coverage evaluation (RUN_DIR/monitor.json)",
    )


def chosen_step(args: argparse.Namespace) -> int | None:
    """The snapshot step `export` was asked for (--step, or --best's step), None for the final
    checkpoint; a run without a best-coverage evaluation is a usage error."""
    if not args.best:
        return args.step
    best = read_monitor(args.run_dir).get("best_step")
    if best is None:
        args.parser.error(f"{args.run_dir} has no evaluation in monitor.json: no best step")
    return best


@contextmanager
def exported_run_dir(args: argparse.Namespace) -> Iterator[Path]:
    """The run directory an exporter reads: RUN_DIR itself, or a view of it whose
    checkpoint.pt is the chosen snapshot (a missing snapshot is a usage error)."""
    step = chosen_step(args)
    if step is None:
        yield args.run_dir
        return
    or_usage_error(args, snapshot_file, args.run_dir, step)  # none kept: which ones are
    with snapshot_run_dir(args.run_dir, step) as view:
        yield view


def add_plot_command(commands: argparse._SubParsersAction) -> None:
    """`plot`: a run directory's curves (losses, modes, quality, KL, coverage) as a PNG."""
    help = "draw a run's curves (losses, modes covered, high quality, KL, coverage) as a PNG"
    plot = add_command(commands, "plot", help, run_plot)
    plot.add_argument("run_dir", type=Path)
    plot.add_argument("--out", type=Path, help="default RUN_DIR/curves.png")


def run_plot(args: argparse.Namespace) -> int:
    """Call plot_run (no metrics in the folder: a usage error) and print the PNG's path."""
    print(or_usage_error(args, plot_run, args.run_dir, args.out))
    return 0
