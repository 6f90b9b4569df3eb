"""What the training loop reports besides the recipe's numbers: the wall clock, throughput and
memory of each metrics record (trainer.telemetry), the collapse monitor (trainer.collapse:
RUN_DIR/monitor.json, optional early stop), numbered snapshots (trainer.snapshots) and the
optional TensorBoard sink (trainer.tensorboard_sink).

The loop (trainer.runs.train) opens one Monitor per session after resuming, asks it for each
record's timing keys, hands it each record it logged and each step it may snapshot, and stops
when it says so. Nothing here draws from the run's random generators, so a monitored run trains
bit for bit as an unmonitored one.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trainer.collapse import entry, is_evaluation, kept_evaluations, summarise, write_monitor
from trainer.snapshots import drop_snapshots_after, prune_snapshots, save_snapshot
from trainer.telemetry import StepClock, last_elapsed
from trainer.tensorboard_sink import FIGURE_SEED, TensorBoardSink, figure_size


@dataclass(frozen=True)
class MonitorOptions:
    """How a session is watched (not part of the recipe: a run may resume with other ones)."""

    keep_snapshots: int = 0  # numbered snapshots kept besides the best (0: none, as before)
    stop_on_collapse: bool = False  # end the run at the evaluation where collapse began
    tensorboard: bool = False  # also write TensorBoard events to RUN_DIR/tensorboard/

    def __post_init__(self) -> None:
        if self.keep_snapshots < 0:
            raise ValueError(f"keep_snapshots must be >= 0, got {self.keep_snapshots}")


class Watched(Protocol):
    """What the monitor reads of a run (trainer.runs.Run has it all)."""

    config: Any  # batch_size (and the GAN's d_steps), dataset
    step: int

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's contents."""

    def samples(self, n: int, seed: int) -> np.ndarray:
        """n samples of the current model from the service's latents/noise of `seed`."""


def samples_per_step(config: Any) -> int:
    """Real training samples one step draws: batch_size per D (critic) step."""
    return config.batch_size * getattr(config, "d_steps", 1)


class Monitor:
    """One training session's clock, collapse monitor, snapshots and TensorBoard sink."""

    def __init__(self, run_dir: Path, options: MonitorOptions, run: Watched) -> None:
        """Open after resuming: monitor.json and snapshots are cut back to run.step."""
        self.run_dir, self.options = Path(run_dir), options
        self.dataset = run.config.dataset
        self.evaluations = kept_evaluations(self.run_dir, run.step)
        drop_snapshots_after(self.run_dir, run.step)
        elapsed = last_elapsed(self.run_dir)
        self.clock = StepClock(run.step, samples_per_step(run.config), elapsed)
        self.sink = TensorBoardSink(self.run_dir, run.step) if options.tensorboard else None
        self.summary = summarise(self.evaluations)
        self.stopped = options.stop_on_collapse and self.summary["collapse_step"] is not None
        self.write()

    def timing(self, step: int) -> dict[str, Any]:
        """The timing and memory keys of a record at `step` (trainer.telemetry)."""
        return self.clock.record(step)

    def logged(self, run: Watched, record: dict[str, Any]) -> None:
        """After metrics.jsonl received `record`: an evaluation updates monitor.json (and may
        stop the run); both go to TensorBoard."""
        if is_evaluation(record):
            self.evaluations.append(entry(record))
            self.summary = summarise(self.evaluations)
            if self.options.stop_on_collapse and self.summary["collapse_step"] is not None:
                self.stopped = True
            self.write()
            if self.sink is not None:
                samples = run.samples(figure_size(self.dataset), FIGURE_SEED)
                self.sink.evaluation(record, samples, self.dataset)
        if self.sink is not None:
            self.sink.scalars(record)
        if is_evaluation(record):
            self.clock.exclude_since_record()  # evaluations are not training throughput

    def snapshot(self, run: Watched, checkpointed: bool) -> None:
        """With keep_snapshots: a numbered snapshot at checkpoint and evaluation steps, then
        all but the newest keep_snapshots and the best-coverage one deleted."""
        keep = self.options.keep_snapshots
        evaluated = bool(self.evaluations) and self.evaluations[-1]["step"] == run.step
        if keep == 0 or not (checkpointed or evaluated):
            return
        save_snapshot(run.state_dict(), self.run_dir)
        best = self.summary["best_step"]
        prune_snapshots(self.run_dir, keep, set() if best is None else {best})

    def write(self) -> None:
        """monitor.json: the rule's summary, whether this session stopped on collapse, and
        every evaluation kept."""
        document = {**self.summary, "stopped_on_collapse": self.stopped}
        write_monitor(self.run_dir, document | {"evaluations": self.evaluations})

    def close(self) -> None:
        """Flush the TensorBoard events."""
        if self.sink is not None:
            self.sink.close()
