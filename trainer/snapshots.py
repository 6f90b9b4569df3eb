"""Numbered snapshots of a run: RUN_DIR/snapshots/step-<8 digits>.pt, each a whole checkpoint
(the family's state_dict, as checkpoint.pt holds it), so any of them can be exported
(`python -m trainer export RUN_DIR --step S` or `--best`) or resumed from.

With `--keep-snapshots N` (N >= 1) the loop writes one at every checkpoint step and at every
evaluation, and keeps the N newest plus the best-coverage one (RUN_DIR/monitor.json's
best_step: trainer.monitor). checkpoint.pt stays the resume point; without the flag (N = 0) no
numbered snapshot is written, as before. Snapshots past the step a run resumes from belong to
a discarded future and are removed when it resumes (or starts over).
"""

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

FOLDER = "snapshots"
PATTERN = re.compile(r"step-(\d{8,})\.pt")


def snapshot_path(run_dir: Path, step: int) -> Path:
    """RUN_DIR/snapshots/step-<step, 8 digits>.pt."""
    return Path(run_dir) / FOLDER / f"step-{step:08d}.pt"


def snapshot_steps(run_dir: Path) -> list[int]:
    """The steps of the numbered snapshots in run_dir, ascending."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    matches = (PATTERN.fullmatch(path.name) for path in folder.iterdir())
    return sorted(int(match.group(1)) for match in matches if match)


def save_snapshot(state: dict[str, Any], run_dir: Path) -> Path:
    """A run's state_dict (with its `step`) as snapshots/step-<step>.pt, written atomically;
    its path."""
    path = snapshot_path(run_dir, int(state["step"]))
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_suffix(".pt.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)  # a crash leaves no half-written snapshot
    return path


def prune_snapshots(run_dir: Path, keep: int, protected: set[int]) -> list[int]:
    """Delete all but the `keep` newest snapshots and the `protected` steps; the steps kept."""
    steps = snapshot_steps(run_dir)
    newest = set(steps[-keep:]) if keep > 0 else set()
    for step in steps:
        if step not in newest and step not in protected:
            snapshot_path(run_dir, step).unlink()
    return [step for step in steps if step in newest or step in protected]


def drop_snapshots_after(run_dir: Path, step: int) -> None:
    """Delete the snapshots of steps past `step` (the run resumes from `step`)."""
    for later in snapshot_steps(run_dir):
        if later > step:
            snapshot_path(run_dir, later).unlink()


def snapshot_file(run_dir: Path, step: int) -> Path:
    """The snapshot of `step`; ValueError naming the steps kept when there is none."""
    path = snapshot_path(run_dir, step)
    if path.is_file():
        return path
    kept = snapshot_steps(run_dir)
    if not kept:
        raise ValueError(
            f"no numbered snapshots in {Path(run_dir) / FOLDER}: train with --keep-snapshots N "
            "to keep them (checkpoint.pt, the final state, exports without --step)"
        )
    raise ValueError(f"no snapshot of step {step} in {run_dir}; kept: {kept}")


@contextmanager
def snapshot_run_dir(run_dir: Path, step: int) -> Iterator[Path]:
    """A temporary run directory whose checkpoint.pt is the snapshot of `step` (hard-linked,
    else copied) beside run_dir's config.json: what an exporter reads of a run. ValueError
    when there is no such snapshot."""
    source = snapshot_file(run_dir, step)
    with tempfile.TemporaryDirectory(prefix=f"step-{step}-", dir=Path(run_dir)) as folder:
        view = Path(folder)
        shutil.copyfile(Path(run_dir) / "config.json", view / "config.json")
        try:
            os.link(source, view / "checkpoint.pt")
        except OSError:  # a file system without hard links
            shutil.copyfile(source, view / "checkpoint.pt")
        yield view
