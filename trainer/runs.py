"""The run directory and the loop every model family shares: build, maybe_resume, then
train_step / evaluate / log / maybe_snapshot until `steps`.

A run directory holds config.json (the resolved config), checkpoint.pt (everything needed to
resume bit-exactly: weights, optimizer moments, step, RNG states), metrics.jsonl (one JSON
line per logged step, with its time, throughput and memory) and monitor.json (the collapse
monitor's verdicts, collapse step and best-coverage step: trainer.monitor, which also keeps
numbered snapshots and TensorBoard events when asked). A family plugs in with its config
(`RunConfig`) and its training state (`Run`): the GAN in trainer/training_loop.py, the EDM
score model in trainer/edm/training_loop.py.
No global RNG is used: each family initialises under a forked, seeded RNG and draws data and
noise from its own torch.Generator, so a run is a function of its config.
"""

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from trainer.devices import Placement
from trainer.distributed import check_world_size
from trainer.monitor import Monitor, MonitorOptions


class RunConfig(Protocol):
    """What the scaffold reads of a family's frozen config (counts in steps; 0: never)."""

    steps: int  # updates to train for
    log_every: int  # steps between metrics.jsonl lines
    eval_every: int  # steps between evaluations, and at the end (0: never)
    snapshot_every: int  # steps between checkpoints, and at the end (0: only there)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: config.json and the checkpoint's `config`."""

    def check_resumable(self, saved: dict[str, Any]) -> None:
        """ValueError if a checkpoint's config `saved` is another recipe than this one."""


class Run(Protocol):
    """A family's training state, as the scaffold drives it; `step` counts completed updates."""

    config: RunConfig
    placement: Placement  # device, mixed precision, rank (trainer.devices)
    step: int

    def train_step(self) -> dict[str, float]:
        """One update (step += 1); the losses to log."""

    def evaluate(self, full: bool = False) -> dict[str, Any]:
        """The papers' protocol numbers of the current model and the mode rules' verdict, to
        log; `full`: the full report's verdict, with its coverage (trainer.evaluation)."""

    def samples(self, n: int, seed: int) -> np.ndarray:
        """n samples of the current (evaluated) model from the service's latents/noise of
        `seed`: points [n, d] or images [n, C, H, W]."""

    def state_dict(self) -> dict[str, Any]:
        """Everything load_state_dict needs, `step` and `config` included; weights_only loadable."""

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Restore a state_dict, `step` included."""


RunT = TypeVar("RunT", bound=Run)
PROGRESS_KEYS = ("modes_covered", "verdict", "steps_per_s")  # shown beside the losses
ConfigT = TypeVar("ConfigT", bound=RunConfig)


def derive_seeds(seed: int, count: int) -> list[int]:
    """`count` independent 63-bit seeds from one run seed (numpy SeedSequence)."""
    state = np.random.SeedSequence(seed).generate_state(count, dtype=np.uint64)
    return [int(s) >> 1 for s in state]


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average's parameters <- decay * average + (1 - decay) * model's; buffers (batch-norm
    statistics, constant tables) copied from model."""
    for mean, current in zip(average.parameters(), model.parameters(), strict=True):
        mean.lerp_(current, 1.0 - decay)
    for mean, current in zip(average.buffers(), model.buffers(), strict=True):
        mean.copy_(current)


def resumable_checkpoint(
    run_dir: Path, resume: bool, config: RunConfig, world_size: int = 1
) -> dict[str, Any] | None:
    """run_dir/checkpoint.pt when resuming and it exists, after config.check_resumable(its
    config) and check_world_size (ValueError for another recipe or process count); None
    otherwise. The device is not checked: a checkpoint resumes on either."""
    path = Path(run_dir) / "checkpoint.pt"
    if not (resume and path.is_file()):
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config.check_resumable(checkpoint["config"])
    check_world_size(int(checkpoint.get("world_size", 1)), world_size)
    return checkpoint


def check_run_dir(
    config: RunConfig, run_dir: Path, resume: bool = True, world_size: int = 1
) -> int:
    """The step train(build, config, run_dir, resume) would start at (0: from scratch);
    ValueError if it would resume another recipe (or one written by another number of
    processes)."""
    checkpoint = resumable_checkpoint(run_dir, resume, config, world_size)
    return 0 if checkpoint is None else int(checkpoint["step"])


def maybe_resume(run: Run, run_dir: Path, resume: bool) -> None:
    """Load run_dir/checkpoint.pt into `run` if it exists and `resume` is set."""
    checkpoint = resumable_checkpoint(run_dir, resume, run.config, run.placement.world_size)
    if checkpoint is not None:
        run.load_state_dict(checkpoint)


def maybe_snapshot(run: Run, run_dir: Path, force: bool = False) -> bool:
    """Write run_dir/checkpoint.pt atomically every `snapshot_every` steps (or when forced)."""
    every = run.config.snapshot_every
    if not (force or (every > 0 and run.step % every == 0)):
        return False
    temporary = Path(run_dir) / "checkpoint.pt.tmp"
    torch.save(run.state_dict(), temporary)
    os.replace(temporary, Path(run_dir) / "checkpoint.pt")  # a crash leaves the old one whole
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


def write_config(config: RunConfig, run_dir: Path) -> None:
    """run_dir/config.json: the resolved config."""
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def log_step(
    run: Run, run_dir: Path, losses: dict[str, float], bar: tqdm, monitor: Monitor
) -> None:
    """After a step: log the losses (with the monitor's time, throughput and memory) every
    `log_every` steps, with the evaluation every `eval_every` steps (both on the last step
    too), hand the record to the monitor and show it on the progress bar."""
    config = run.config
    last = run.step == config.steps
    evaluate_now = config.eval_every > 0 and is_due(run.step, config.eval_every, last)
    if evaluate_now or is_due(run.step, config.log_every, last):
        record = {"step": run.step, **losses, **monitor.timing(run.step)}
        if evaluate_now:
            record |= run.evaluate()
        log(run_dir, record)
        monitor.logged(run, record)
        shown = {k: v for k, v in record.items() if k in losses or k in PROGRESS_KEYS}
        bar.set_postfix({k: round(v, 3) if isinstance(v, float) else v for k, v in shown.items()})


def train(
    build: Callable[[ConfigT, Placement], RunT],
    config: ConfigT,
    run_dir: Path,
    resume: bool = True,
    progress: bool = True,
    placement: Placement | None = None,
    monitoring: MonitorOptions | None = None,
) -> RunT:
    """Train build(config, placement) until `config.steps` updates (or, with
    monitoring.stop_on_collapse, the evaluation where collapse began), resuming from run_dir if
    asked. Under torchrun every rank trains; only the writer (rank 0) evaluates, monitors and
    writes (ValueError for stop_on_collapse there: the other ranks could not know when to stop).

    Returns the final state; run_dir receives config.json, checkpoint.pt, metrics.jsonl and
    monitor.json (trainer.monitor: numbered snapshots and TensorBoard events when asked).
    """
    run_dir, placement = Path(run_dir), placement or Placement()
    monitoring = monitoring or MonitorOptions()
    if monitoring.stop_on_collapse and placement.world_size > 1:
        raise ValueError("--stop-on-collapse needs a one-process run (not torchrun)")
    run_dir.mkdir(parents=True, exist_ok=True)
    run = build(config, placement)
    maybe_resume(run, run_dir, resume)
    if placement.writer:
        truncate_log(run_dir, run.step)
        write_config(config, run_dir)
    monitor = Monitor(run_dir, monitoring, run) if placement.writer else None
    disable = not (progress and placement.writer)
    bar = tqdm(total=config.steps, initial=run.step, disable=disable, desc=run_dir.name)
    while run.step < config.steps and not (monitor and monitor.stopped):
        losses = run.train_step()
        bar.update(1)
        if monitor is not None:
            log_step(run, run_dir, losses, bar, monitor)
            final = run.step == config.steps or monitor.stopped
            monitor.snapshot(run, maybe_snapshot(run, run_dir, force=final))
    bar.close()
    if monitor is not None:
        monitor.close()
    return run
