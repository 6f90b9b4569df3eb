"""The `train` command's placement: --device, --amp and --threads, and the run under torchrun
(one process per rank, rank 0 writing). The flags are run-time choices, never part of the
recipe (trainer.devices)."""

import argparse
from pathlib import Path

import torch

from trainer.cli_tools import or_usage_error, positive_int
from trainer.devices import AMP_MODES
from trainer.distributed import (
    check_same_start,
    check_shards,
    finish,
    init_placement,
    shutdown,
)
from trainer.families import Family
from trainer.monitor import MonitorOptions
from trainer.runs import RunConfig, check_run_dir, train


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """--device, --amp and --threads for `train`."""
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N; under "
        "torchrun each rank uses cuda:LOCAL_RANK (default auto)",
    )
    parser.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="auto",
        help="bfloat16 autocast around the training step's forward passes: auto = on for CUDA "
        "with bfloat16, off on the CPU (default auto)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch's CPU threads for this run (default: torch's, one per core); 1 when runs "
        "share the machine, as `table` gives each of its runs",
    )


def train_placed(
    args: argparse.Namespace,
    family: Family,
    config: RunConfig,
    run_dir: Path,
    monitoring: MonitorOptions | None = None,
) -> bool:
    """Train `config` with the family's recipe on --device / --amp, as this torchrun rank when
    launched by torchrun. A device that cannot run here, a batch that does not split across the
    ranks, a run dir of another recipe or process count, or one that some ranks do not see:
    usage errors on every rank. Returns True for the writer (rank 0), the one that reports."""
    if args.threads:
        torch.set_num_threads(args.threads)
    placement = or_usage_error(args, init_placement, args.device, args.amp)
    try:
        resume = not args.no_resume
        or_usage_error(args, check_shards, config, placement.world_size)
        start = or_usage_error(args, check_run_dir, config, run_dir, resume, placement.world_size)
        or_usage_error(args, check_same_start, start)
        progress = not args.no_progress
        train(family.build, config, run_dir, resume, progress, placement, monitoring)
        finish()  # every rank waits for the writer's last checkpoint
    finally:
        shutdown()
    return placement.writer
