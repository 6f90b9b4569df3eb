"""Figures of runs: the curves of a run directory (`python -m trainer plot RUN_DIR`) and the
sample panels that the collapse table and the TensorBoard sink share.

The curves: losses, modes covered (with the modes an exact sampler with the same high-quality
samples covers), % high quality, KL and coverage (modes covered / that expectation) against
the step, from metrics.jsonl, with the verdict of each evaluation as its marker's colour and
the monitor's collapse step (red dashed line) and best-coverage step (green dotted line) from
monitor.json (trainer.collapse).
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from trainer.collapse import mode_coverage, read_monitor
from trainer.datasets import GaussianMixture, get_dataset

CURVES_FILE = "curves.png"
VERDICT_COLOURS = {
    "healthy": "tab:green",
    "inconclusive": "tab:gray",
    "partial_collapse": "tab:orange",
    "collapsed": "tab:red",
}
EVALUATION_PANELS = (  # (title, record key or "coverage", y label)
    ("modes covered", "modes_covered", "modes"),
    ("high quality", "high_quality_fraction", "fraction"),
    ("KL(generated || reference)", "kl", "nats"),
    ("coverage", "coverage", "covered / expected"),
)


def draw_samples(ax: Axes, samples: np.ndarray, dataset_name: str) -> None:
    """2-D samples [n, 2] as a scatter over the mixture's centres, or images [n, C, H, W] in
    [-1, 1] as a grid."""
    dataset = get_dataset(dataset_name)
    if isinstance(dataset, GaussianMixture):
        centres = dataset.centres.numpy()
        ax.scatter(centres[:, 0], centres[:, 1], s=30, c="tab:red", marker="x")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", alpha=0.5)
        span = 1.3 * float(np.abs(centres).max()) + 0.2
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_aspect("equal")
    else:
        ax.imshow(image_grid(samples), interpolation="nearest")


def image_grid(samples: np.ndarray, columns: int = 8) -> np.ndarray:
    """Images [n, C, H, W] in [-1, 1] -> one [rows*H, columns*W', 3] array in [0, 1]: gray for
    C = 1, RGB for C = 3, and otherwise (stacked-digits4's 4 channels) the channels side by side
    in gray (W' = C * W), so every digit of a stack shows."""
    images = (np.clip(samples, -1.0, 1.0) + 1.0) / 2.0
    if images.shape[1] not in (1, 3):
        n, channels, height, width = images.shape
        images = images.transpose(0, 2, 1, 3).reshape(n, 1, height, channels * width)
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    n, _, height, width = images.shape
    rows = -(-n // columns)
    grid = np.ones((rows * height, columns * width, 3))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = (
            image.transpose(1, 2, 0)
        )
    return grid


def samples_figure(samples: np.ndarray, dataset_name: str, title: str) -> Figure:
    """One panel of samples (draw_samples) with a title: the TensorBoard sink's figure."""
    figure = Figure(figsize=(4, 4), dpi=100)
    ax = figure.subplots()
    ax.set_axis_off()
    draw_samples(ax, samples, dataset_name)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records; ValueError when the run directory has none."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"no metrics.jsonl in {run_dir}: is it a run directory?")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{path} is empty: the run has not logged a step yet")
    return records


def draw_losses(ax: Axes, records: list[dict[str, Any]]) -> None:
    """Every *loss key of the records against the step."""
    names = sorted({key for record in records for key in record if key.endswith("loss")})
    for name in names:
        points = [(r["step"], r[name]) for r in records if r.get(name) is not None]
        ax.plot(*zip(*points, strict=True), label=name, linewidth=0.8)
    ax.set_title("losses")
    if names:
        ax.legend(fontsize=7)


def draw_evaluation(ax: Axes, records: list[dict[str, Any]], key: str, title: str) -> None:
    """One evaluation number against the step, each marker coloured by its verdict."""
    evaluated = [r for r in records if "modes_covered" in r]
    values = [mode_coverage(r) if key == "coverage" else r.get(key) for r in evaluated]
    points = [(r, v) for r, v in zip(evaluated, values, strict=True) if v is not None]
    if points:
        ax.plot([r["step"] for r, _ in points], [v for _, v in points], color="0.6", lw=0.8)
        colours = [VERDICT_COLOURS.get(r.get("verdict"), "tab:blue") for r, _ in points]
        ax.scatter([r["step"] for r, _ in points], [v for _, v in points], c=colours, s=12)
    if key == "modes_covered" and evaluated:
        ax.axhline(evaluated[0]["modes_total"], color="0.3", lw=0.6, ls=":")
        expected = [(r["step"], r["modes_expected"]) for r in evaluated if "modes_expected" in r]
        if expected:
            ax.plot(*zip(*expected, strict=True), color="tab:purple", lw=0.6, ls="--")
    ax.set_title(title)


def plot_run(run_dir: Path, path: Path | None = None) -> Path:
    """The run's curves as a PNG (default RUN_DIR/curves.png); its path."""
    records, monitor = read_records(run_dir), read_monitor(run_dir)
    figure = Figure(figsize=(12, 6.5), dpi=100)
    axes = figure.subplots(2, 3).flat
    draw_losses(axes[0], records)
    for ax, (title, key, unit) in zip(axes[1:], EVALUATION_PANELS, strict=False):
        draw_evaluation(ax, records, key, title)
        ax.set_ylabel(unit)
    for ax in axes[:5]:
        ax.set_xlabel("step")
        if monitor.get("collapse_step") is not None:
            ax.axvline(monitor["collapse_step"], color="tab:red", ls="--", lw=1)
        if monitor.get("best_step") is not None:
            ax.axvline(monitor["best_step"], color="tab:green", ls=":", lw=1)
    draw_legend(axes[5], monitor)
    figure.suptitle(str(run_dir), fontsize=9)
    figure.tight_layout()
    path = Path(path) if path else Path(run_dir) / CURVES_FILE
    figure.savefig(path, format="png")
    return path


def draw_legend(ax: Axes, monitor: dict[str, Any]) -> None:
    """The last panel: what the colours and lines mean, and the monitor's two steps."""
    ax.set_axis_off()
    lines = [
        f"{status}: {colour.removeprefix('tab:')}" for status, colour in VERDICT_COLOURS.items()
    ]
    lines += [
        "",
        f"collapse began (red dashed): step {monitor.get('collapse_step')}",
        f"best coverage (green dotted): step {monitor.get('best_step')}",
        "modes panel: dotted = total,",
        "dashed purple = what an exact sampler",
        "with as many high-quality samples covers",
    ]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", fontsize=8, family="monospace")
