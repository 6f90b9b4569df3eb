"""TensorBoard as an optional second sink of the metrics (`train --tensorboard`): event files in
RUN_DIR/tensorboard/, read with `tensorboard --logdir RUN_DIR/tensorboard`.

Scalars, at each logged step: every loss (loss/<name>), each evaluation's modes covered,
high-quality share, KL and coverage (eval/<name>; coverage = modes covered / the modes an exact
sampler with the same high-quality samples covers) and the throughput and memory of the record
(system/<name>). At each evaluation: its verdict and reasons as text and a figure of samples
(1,000 points over the mixture's centres, or 64 images). A resumed run purges the events past
the step it resumes from, as metrics.jsonl drops its records.

torch.utils.tensorboard needs the `tensorboard` package, which the trainer does not require:
asked for without it, the sink raises MissingPackageError (a usage error on the command line).
"""

from pathlib import Path
from typing import Any

import numpy as np

from trainer.collapse import mode_coverage
from trainer.datasets import GaussianMixture, get_dataset
from trainer.telemetry import TIMING_KEYS

FOLDER = "tensorboard"
EVALUATION_SCALARS = ("modes_covered", "high_quality_fraction", "kl")
FIGURE_POINTS, FIGURE_IMAGES = 1000, 64  # samples in the figure: 2-D points, images
FIGURE_SEED = 0


class MissingPackageError(ImportError):
    """An optional feature's package is not installed; the message says which and what to do."""


def summary_writer_class() -> type:
    """torch.utils.tensorboard.SummaryWriter; MissingPackageError without the
    `tensorboard` package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise MissingPackageError(
            "--tensorboard needs the tensorboard package, which is not installed "
            "(pip install tensorboard); without it, metrics.jsonl, monitor.json and "
            "`python -m trainer plot RUN_DIR` hold the same numbers"
        ) from error
    return SummaryWriter


def figure_size(dataset_name: str) -> int:
    """How many samples the evaluation figure shows: points or images."""
    return (
        FIGURE_POINTS if isinstance(get_dataset(dataset_name), GaussianMixture) else FIGURE_IMAGES
    )


class TensorBoardSink:
    """Writes a run's records to RUN_DIR/tensorboard/ as TensorBoard events."""

    def __init__(self, run_dir: Path, step: int) -> None:
        """Open the event writer; events at steps past `step` (a discarded future) are purged."""
        writer_class = summary_writer_class()
        self.writer = writer_class(log_dir=str(Path(run_dir) / FOLDER), purge_step=step + 1)

    def scalars(self, record: dict[str, Any]) -> None:
        """The record's losses, evaluation numbers, coverage, throughput and memory."""
        step = record["step"]
        for key, value in record.items():
            if value is None or isinstance(value, bool | str | list) or key == "step":
                continue
            if key.endswith("loss"):
                self.writer.add_scalar(f"loss/{key}", value, step)
            elif key in TIMING_KEYS:
                self.writer.add_scalar(f"system/{key}", value, step)
            elif key in EVALUATION_SCALARS:
                self.writer.add_scalar(f"eval/{key}", value, step)
        coverage = mode_coverage(record)
        if coverage is not None:
            self.writer.add_scalar("eval/coverage", coverage, step)

    def evaluation(self, record: dict[str, Any], samples: np.ndarray, dataset_name: str) -> None:
        """The evaluation's verdict (text) and a figure of `samples`."""
        from trainer.plot import samples_figure  # matplotlib only when a figure is drawn

        step = record["step"]
        reasons = "\n".join(f"- {reason}" for reason in record.get("verdict_reasons") or [])
        self.writer.add_text("verdict", f"**{record['verdict']}**\n\n{reasons}", step)
        title = f"step {step}: {record['modes_covered']}/{record['modes_total']} modes, "
        title += record["verdict"]
        self.writer.add_figure("samples", samples_figure(samples, dataset_name, title), step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
