"""The report as a PNG figure (matplotlib, Agg backend; imported only when a figure is asked for).

- 2-D batches: the samples scattered over the reference (mixture centres, captured ones
  circled and missing ones crossed; or the reference points of an uploaded reference, with
  the reference rows nearest each missing discovered mode crossed; or alone, without a
  reference).
- Image batches (1, 3 or 4 channels): a grid of samples beside the NDB bin histogram, bins
  that differ significantly from the reference highlighted; for a reference with discovered
  modes, a third panel shows the reference images nearest each missing mode, a row per mode.
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
MISSING_MODES_DRAWN = 8  # rows of the missing-mode exemplar panel


def render_report(
    report: dict[str, Any],
    batch: np.ndarray,
    reference: dict[str, Any] | None,
    reference_features: np.ndarray | None,
    exemplars: np.ndarray | None = None,
) -> bytes:
    """PNG bytes of the report's figure for batch [N, ...] and the reference object (None
    for a diagnosis without a reference); exemplars [K, E, *sample_shape]: the reference rows
    nearest each discovered mode (the report's `modes.missing_exemplars` picks the missing)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state shared between threads

    figure = Figure(figsize=(11, 5), dpi=100)
    is_image = batch.ndim in (3, 4) and shape_layout(batch.shape)[0] in DRAWN_CHANNELS
    missing = missing_exemplars(report, exemplars)
    panels = 2 if (batch.ndim == 2 and batch.shape[1] == 2) or is_image else 1
    panels += int(is_image and bool(missing))
    axes = figure.subplots(1, panels, squeeze=False)[0]
    if batch.ndim == 2 and batch.shape[1] == 2:
        draw_scatter(axes[0], report, batch, reference, reference_features)
        draw_missing_points(axes[0], missing)
    elif is_image:
        draw_grid(axes[0], batch)
        if missing:
            draw_missing_images(axes[1], missing)
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


def missing_exemplars(report: dict, exemplars: np.ndarray | None) -> list[tuple[int, np.ndarray]]:
    """(mode, its exemplar rows [e, *sample_shape]) for each missing discovered mode, at most
    MISSING_MODES_DRAWN of them; [] without discovered modes or when none is missing."""
    listed = ((report.get("modes") or {}).get("missing_exemplars")) or []
    if exemplars is None:
        return []
    return [
        (entry["mode"], exemplars[entry["mode"], : len(entry["reference_rows"])])
        for entry in listed[:MISSING_MODES_DRAWN]
    ]


def draw_missing_points(axes, missing: list[tuple[int, np.ndarray]]) -> None:
    """The 2-D reference rows nearest each missing discovered mode, crossed in red."""
    if not missing:
        return
    points = np.concatenate([rows for _, rows in missing])
    axes.scatter(*points.T, s=80, marker="x", color="red", label=f"missing ({len(missing)})")
    axes.legend(loc="upper right", fontsize=8)


def draw_missing_images(axes, missing: list[tuple[int, np.ndarray]]) -> None:
    """The reference images nearest each missing discovered mode, one row per mode."""
    columns = max(len(rows) for _, rows in missing)
    blank = np.full_like(missing[0][1][:1], np.nan)
    images = np.concatenate(
        [np.concatenate([rows, *[blank] * (columns - len(rows))]) for _, rows in missing]
    )
    draw_images(axes, images, columns)
    modes = ", ".join(str(mode) for mode, _ in missing)
    axes.set_title(f"missing modes {modes}: nearest reference images", fontsize=9)


def draw_grid(axes, batch: np.ndarray) -> None:
    """The first GRID_IMAGES images in a square grid (gray, RGB or RGBA), values scaled to
    [0, 1]; batch [N, C, H, W], [N, H, W, C] or [N, H, W] as image_layout reads it."""
    images = batch[:GRID_IMAGES]
    draw_images(axes, images, int(np.ceil(np.sqrt(len(images)))))
    axes.set_title(f"first {len(images)} samples")


def draw_images(axes, images: np.ndarray, columns: int) -> None:
    """images [n, ...] (layouts as draw_grid) row by row, `columns` a row, values scaled to
    [0, 1]; NaN images are left blank."""
    images = to_channels_first(images, shape_layout(images.shape)).transpose(0, 2, 3, 1)
    low, high = float(np.nanmin(images)), float(np.nanmax(images))
    images = (images - low) / (high - low) if high > low else np.zeros_like(images)
    rows = int(np.ceil(len(images) / columns))
    height, width, channels = images.shape[1:]
    canvas = np.ones((rows * (height + 1), columns * (width + 1), channels))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[
            row * (height + 1) : row * (height + 1) + height,
            column * (width + 1) : column * (width + 1) + width,
        ] = np.nan_to_num(image, nan=1.0)
    axes.imshow(
        canvas.squeeze(-1) if channels == 1 else canvas, cmap="gray", interpolation="nearest"
    )
    axes.set_axis_off()


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
