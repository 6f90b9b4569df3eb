"""What a metrics.jsonl record says about the machine: when it was written, how long the run has
trained, how fast and in how much memory.

Every record gets `time` (ISO 8601 UTC, seconds precision) and `elapsed_s` (wall seconds since
the run began, evaluations included, summed over the sessions of a resumed run: a resumed
session starts from the last kept record's elapsed_s, so the time between that record and the
interruption is not counted). Throughput, `steps_per_s` and `samples_per_s` (real training
samples drawn per second: batch_size x d_steps per step), is measured over the steps since the
previous record of the same session, evaluations excluded (checkpoint writes included).
Memory: `peak_rss_mib`, the process's peak resident set size in MiB; `cuda_max_memory_mib`,
torch's peak CUDA allocation in MiB when the process uses CUDA, else null.

These keys differ from one run of a recipe to the next; everything else in a record is a
function of the config (reproducible_record drops them for comparisons).
"""

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from trainer.onnx_export import utc_now

TIMING_KEYS = (
    "time",
    "elapsed_s",
    "steps_per_s",
    "samples_per_s",
    "peak_rss_mib",
    "cuda_max_memory_mib",
)
MIB = 2**20


def reproducible_record(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics record without its wall-clock and memory keys (TIMING_KEYS): what two runs of
    the same config (straight, or interrupted and resumed) write alike."""
    return {key: value for key, value in record.items() if key not in TIMING_KEYS}


def peak_rss_mib() -> float:
    """The process's peak resident set size in MiB (getrusage: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def cuda_max_memory_mib() -> float | None:
    """torch's peak CUDA allocation of this process in MiB; None when it has not used CUDA."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return torch.cuda.max_memory_allocated() / MIB


def last_elapsed(run_dir: Path) -> float:
    """elapsed_s of metrics.jsonl's last record that has one (0.0 without such a record)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return 0.0
    for line in reversed(path.read_text().splitlines()):
        if line.strip():
            elapsed = json.loads(line).get("elapsed_s")
            if elapsed is not None:
                return float(elapsed)
    return 0.0


class StepClock:
    """Wall time and throughput of one training session, for its metrics records."""

    def __init__(self, step: int, samples_per_step: int, elapsed_before: float = 0.0) -> None:
        """step: the step the session starts from; samples_per_step: real samples drawn per
        step; elapsed_before: training seconds of earlier sessions (last_elapsed)."""
        self.samples_per_step = samples_per_step
        self.elapsed_before = elapsed_before
        self.started = self.mark = time.perf_counter()
        self.mark_step = step

    def record(self, step: int) -> dict[str, Any]:
        """The TIMING_KEYS of a record at `step` (throughput since the previous record)."""
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # queued kernels belong to the steps being timed
        now = time.perf_counter()
        seconds = now - self.mark
        steps_per_s = (step - self.mark_step) / seconds if seconds > 0 else None
        self.mark, self.mark_step = now, step
        return {
            "time": utc_now(),
            "elapsed_s": round(self.elapsed_before + now - self.started, 3),
            "steps_per_s": steps_per_s,
            "samples_per_s": None if steps_per_s is None else steps_per_s * self.samples_per_step,
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "cuda_max_memory_mib": cuda_max_memory_mib(),
        }

    def exclude_since_record(self) -> None:
        """Leave the time since the last record out of the next throughput (call after an
        evaluation)."""
        self.mark = time.perf_counter()
