"""The report as a PNG figure (matplotlib, Agg backend; imported only when a figure is asked for).

- 2-D batches: the samples scattered over the reference (mixture centres, captured ones
  circled and missing ones crossed; or the reference points of an uploaded reference; or
  alone, without a reference).
- Image batches (1, 3 or 4 channels): a grid of samples beside the NDB bin histogram, bins
  that differ significantly from the reference highlighted.
- Anything else: the NDB bin histogram alone.

Without a reference (an upload diagnosed alone) the bin panel says why there are no bins and
gives the Vendi score.
"""

import io
from typing import Any

import numpy as np

from lab.diagnostics.embedding import shape_layout, to_channels_first

DRAWN_CHANNELS = (1, 3, 4)  # gray, RGB, RGBA: what imshow draws

SCATTER_POINTS = 5_000  # at most this many points are drawn (a seeded subsample)
GRID_IMAGES = 64


def render_report(
    report: dict[str, Any],
    batch: np.ndarray,
    reference: dict[str, Any] | None,
    reference_features: np.ndarray | None,
) -> bytes:
    """PNG bytes of the report's figure for batch [N, ...] and the reference object (None
    for a diagnosis without a reference)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state shared between threads

    figure = Figure(figsize=(11, 5), dpi=100)
    is_image = batch.ndim in (3, 4) and shape_layout(batch.shape)[0] in DRAWN_CHANNELS
    panels = 2 if (batch.ndim == 2 and batch.shape[1] == 2) or is_image else 1
    axes = figure.subplots(1, panels, squeeze=False)[0]
    if batch.ndim == 2 and batch.shape[1] == 2:
        draw_scatter(axes[0], report, batch, reference, reference_features)
    elif is_image:
        draw_grid(axes[0], batch)
    draw_bins(axes[-1], report)
    verdict = report["verdict"]["status"].replace("_", " ")
    title = report["reference"] or "no reference"
    figure.suptitle(f"{title}: {report['n_samples']} samples, {verdict}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def subsample(points: np.ndarray, limit: int) -> np.ndarray:
    if len(points) <= limit:
        return points
    keep = np.random.default_rng(0).choice(len(points), limit, replace=False)
    return points[np.sort(keep)]


def draw_scatter(
    axes,
    report: dict,
    batch: np.ndarray,
    reference: dict | None,
    reference_features: np.ndarray | None,
) -> None:
    """Samples over the mixture centres (captured circled, missing crossed), over the reference
    points, or alone (no reference)."""
    if reference is not None and reference.get("type") == "gaussian_mixture":
        centres = np.asarray(reference["centres"])
        missing = set(report["modes"]["missing"])
        captured = [i for i in range(len(centres)) if i not in missing]
        axes.scatter(*subsample(batch, SCATTER_POINTS).T, s=3, alpha=0.4, label="samples")
        axes.scatter(
            *centres[captured].T,
            s=120,
            facecolors="none",
            edgecolors="green",
            linewidths=1.5,
            label=f"captured ({len(captured)})",
        )
        if missing:
            axes.scatter(
                *centres[sorted(missing)].T,
                s=80,
                marker="x",
                color="red",
                label=f"missing ({len(missing)})",
            )
    elif reference_features is None:  # no reference: the samples alone
        axes.scatter(*subsample(batch, SCATTER_POINTS).T, s=3, alpha=0.4, label="samples")
    else:
        axes.scatter(
            *subsample(reference_features, SCATTER_POINTS).T,
            s=3,
            alpha=0.3,
            color="gray",
            label="reference",
        )
        axes.scatter(*subsample(batch, SCATTER_POINTS).T, s=3, alpha=0.4, label="samples")
    axes.set_aspect("equal", adjustable="datalim")
    axes.legend(loc="upper right", fontsize=8)
    axes.set_title("samples")


def draw_grid(axes, batch: np.ndarray) -> None:
    """The first GRID_IMAGES images in a square grid (gray, RGB or RGBA), values scaled to
    [0, 1]; batch [N, C, H, W], [N, H, W, C] or [N, H, W] as image_layout reads it."""
    images = batch[:GRID_IMAGES]
    images = to_channels_first(images, shape_layout(images.shape)).transpose(0, 2, 3, 1)
    low, high = float(images.min()), float(images.max())
    images = (images - low) / (high - low) if high > low else np.zeros_like(images)
    side = int(np.ceil(np.sqrt(len(images))))
    height, width, channels = images.shape[1:]
    canvas = np.ones((side * (height + 1), side * (width + 1), channels))
    for index, image in enumerate(images):
        row, column = divmod(index, side)
        canvas[
            row * (height + 1) : row * (height + 1) + height,
            column * (width + 1) : column * (width + 1) + width,
        ] = image
    axes.imshow(
        canvas.squeeze(-1) if channels == 1 else canvas, cmap="gray", interpolation="nearest"
    )
    axes.set_axis_off()
    axes.set_title(f"first {len(images)} samples")


def draw_bins(axes, report: dict) -> None:
    """Reference vs sample share per K-means bin (NDB), differing bins in red."""
    from matplotlib.patches import Patch

    features = report.get("features") or {}
    bins = features.get("ndb")
    if bins is None:
        lines = [*features.get("skipped", [])] or ["too few samples for NDB"]
        if features.get("vendi") is not None:
            lines.append(f"Vendi score {features['vendi']:.2f}")
        axes.text(0.5, 0.5, "\n".join(lines), ha="center", va="center")
        axes.set_axis_off()
        return
    reference = np.asarray(bins["reference_histogram"], dtype=float)
    samples = np.asarray(bins["sample_histogram"], dtype=float)
    positions = np.arange(len(reference))
    axes.bar(
        positions, reference / reference.sum(), width=1.0, color="lightgray", label="reference"
    )
    different = set(bins["different_bins"])
    colours = ["red" if i in different else "tab:blue" for i in positions]
    axes.bar(positions, samples / max(samples.sum(), 1), width=0.5, color=colours)
    axes.set_xlabel("K-means bin of the reference")
    axes.set_ylabel("share")
    axes.set_title(f"NDB: {bins['ndb']} of {bins['n_bins']} bins differ")
    legend = [
        ("lightgray", "reference"),
        ("tab:blue", "samples"),
        ("red", "samples, bin differs (p < 0.05)"),
    ]
    axes.legend(handles=[Patch(color=colour, label=label) for colour, label in legend], fontsize=8)
