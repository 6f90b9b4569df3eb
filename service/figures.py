"""The report as a PNG figure (matplotlib, Agg backend; imported only when a figure is asked for).

- 2-D batches: the samples scattered over the reference (mixture centres, captured ones
  circled and missing ones crossed; or the reference points of an uploaded reference, with
  the reference rows nearest each missing discovered mode crossed; or alone, without a
  reference).
- Image batches (1, 3 or 4 channels): a grid of samples; for a reference with discovered
  modes, a panel shows the reference images nearest each missing mode, a row per mode.
- The last panel shows the modes when the reference has them: per-mode bars (high-quality
  samples against what an exact sampler with as many puts there, missing modes marked; an
  ensemble's bars stacked by member) for up
  to MAX_MODE_BARS modes, a heat map of samples / expected in rows of HEATMAP_ROW modes beyond
  (1,000 stacked-digit modes: 10 x 100; stacked-digits4's 10,000: 100 x 100); without modes,
  the NDB bin histogram.

The title names the model, version and seed (when the samples were generated), the reference,
the verdict and the key numbers. Legends sit outside the data. Without a reference (an upload
diagnosed alone) the bin panel says why there are no bins and gives the Vendi score.
"""

import io
from typing import Any

import numpy as np

from lab.diagnostics.embedding import shape_layout, to_channels_first

DRAWN_CHANNELS = (1, 3, 4)  # gray, RGB, RGBA: what imshow draws

SCATTER_POINTS = 5_000  # at most this many points are drawn (a seeded subsample)
GRID_IMAGES = 64
MISSING_MODES_DRAWN = 8  # rows of the missing-mode exemplar panel
MAX_MODE_BARS = 100  # up to this many modes a bar each; beyond, a heat map
HEATMAP_ROW = 100  # modes per heat-map row


def render_report(
    report: dict[str, Any],
    batch: np.ndarray,
    reference: dict[str, Any] | None,
    reference_features: np.ndarray | None,
    exemplars: np.ndarray | None = None,
    request: dict[str, Any] | None = None,
) -> bytes:
    """PNG bytes of build_figure's figure (same arguments)."""
    figure = build_figure(report, batch, reference, reference_features, exemplars, request)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def build_figure(
    report: dict[str, Any],
    batch: np.ndarray,
    reference: dict[str, Any] | None,
    reference_features: np.ndarray | None,
    exemplars: np.ndarray | None = None,
    request: dict[str, Any] | None = None,
):
    """The report's matplotlib Figure for batch [N, ...] and the reference object (None for a
    diagnosis without a reference); exemplars [K, E, *sample_shape]: the reference rows
    nearest each discovered mode (the report's `modes.missing_exemplars` picks the missing);
    request: what generated the samples (model, version, seed), None for an upload."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state shared between threads

    figure = Figure(figsize=(12, 5.5), dpi=100)
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
    if report.get("modes"):
        draw_modes(axes[-1], report, reference, figure)
    else:
        draw_bins(axes[-1], report)
    figure.suptitle(figure_title(report, request), fontsize=11)
    figure.tight_layout()
    return figure


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
    legend_below(axes)
    axes.set_title("samples")


def missing_exemplars(report: dict, exemplars: np.ndarray | None) -> list[tuple[int, np.ndarray]]:
    """(mode, its exemplar rows [e, *sample_shape]) for each missing, then each starved,
    discovered mode, at most MISSING_MODES_DRAWN of them; [] without discovered modes or when
    none is missing or starved."""
    modes = report.get("modes") or {}
    listed = (modes.get("missing_exemplars") or []) + (modes.get("starved_exemplars") or [])
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
    label = f"missing or starved ({len(missing)})"
    axes.scatter(*points.T, s=80, marker="x", color="red", label=label)
    legend_below(axes)


def draw_missing_images(axes, missing: list[tuple[int, np.ndarray]]) -> None:
    """The reference images nearest each missing discovered mode, one row per mode."""
    columns = max(len(rows) for _, rows in missing)
    blank = np.full_like(missing[0][1][:1], np.nan)
    images = np.concatenate(
        [np.concatenate([rows, *[blank] * (columns - len(rows))]) for _, rows in missing]
    )
    draw_images(axes, images, columns)
    modes = ", ".join(str(mode) for mode, _ in missing)
    axes.set_title(f"missing or starved modes {modes}: nearest reference images", fontsize=9)


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
    legend_below(axes, [Patch(color=colour, label=label) for colour, label in legend])


def legend_below(axes, handles: list | None = None) -> None:
    """The axes' legend under its x axis, off the data."""
    if handles is None:
        handles, _ = axes.get_legend_handles_labels()
    axes.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=min(len(handles), 3),
        fontsize=8,
        frameon=False,
    )


def figure_title(report: dict, request: dict | None) -> str:
    """Two lines: what was diagnosed (model, version, seed; the reference; N; the verdict)
    and the key numbers of the report."""
    source = "upload"
    if request and "model" in request:
        source = f"{request['model']} v{request['version']}, seed {request['seed']}"
    reference = report["reference"] or "no reference"
    verdict = report["verdict"]["status"].replace("_", " ")
    head = f"{source} vs {reference}: {report['n_samples']:,} samples, {verdict}"
    return head + "\n" + " | ".join(key_numbers(report))


def key_numbers(report: dict) -> list[str]:
    """The report's key numbers as short phrases (modes, KL, high quality, coverage)."""
    numbers, modes = [], report.get("modes")
    if modes:
        expected = report["expected_covered_same_quality"]
        numbers.append(f"modes {modes['covered']}/{modes['total']} (exact sampler {expected:.1f})")
        if report.get("kl") is not None:
            numbers.append(f"KL {report['kl']:.3f} (exact {report['kl_expected_ideal']:.3f})")
        numbers.append(f"high quality {report['high_quality_fraction']:.1%}")
    manifold = (report.get("features") or {}).get("manifold")
    if manifold:
        identical = manifold["coverage_expected_identical"]
        numbers.append(f"coverage {manifold['coverage']:.2f} (identical {identical:.2f})")
    vendi = (report.get("features") or {}).get("vendi")
    if not numbers and vendi is not None:
        numbers.append(f"Vendi score {vendi:.2f}")
    return numbers or ["too few samples for the metrics"]


def mode_weights(reference: dict | None, total: int) -> np.ndarray:
    """float [K]: the reference's mode weights (a mixture's or classifier's `weights`, or the
    discovered modes' `weights`), normalised; uniform when the card gives none."""
    spec = reference or {}
    weights = spec.get("weights") or (spec.get("modes") or {}).get("weights")
    if weights is None or len(weights) != total:
        return np.full(total, 1.0 / total)
    weights = np.asarray(weights, dtype=np.float64)
    return weights / weights.sum()


def mode_counts(report: dict, reference: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(high-quality samples per mode int [K], what an exact sampler with as many high-quality
    samples puts on each mode on average, float [K])."""
    histogram = np.asarray(report["modes"]["histogram"], dtype=np.int64)
    expected = histogram.sum() * mode_weights(reference, len(histogram))
    return histogram, expected


def heatmap_grid(histogram: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """samples / expected per mode as rows of HEATMAP_ROW modes, float [ceil(K / row), row]:
    0 for a missing mode of positive weight, NaN for padding and modes of weight 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, histogram / expected, np.nan)
    rows = -(-len(ratio) // HEATMAP_ROW)
    grid = np.full(rows * HEATMAP_ROW, np.nan)
    grid[: len(ratio)] = ratio
    return grid.reshape(rows, HEATMAP_ROW)


def draw_modes(axes, report: dict, reference: dict | None, figure) -> None:
    """Per-mode bars (up to MAX_MODE_BARS modes) or the samples / expected heat map."""
    histogram, expected = mode_counts(report, reference)
    missing = report["modes"]["missing"]
    if len(histogram) > MAX_MODE_BARS:
        draw_heatmap(axes, heatmap_grid(histogram, expected), len(missing), figure)
        return
    positions = np.arange(len(histogram))
    axes.bar(positions, expected, width=0.9, color="lightgray", label="exact sampler")
    draw_sample_bars(axes, report, positions, histogram)
    starved = report["modes"].get("starved") or []
    mark_modes(axes, missing, np.zeros(len(missing)), "x", "red", "missing")
    mark_modes(axes, starved, histogram[starved], "v", "tab:orange", "starved")
    axes.set_xlabel("mode")
    axes.set_ylabel("high-quality samples")
    if len(histogram) <= 30:
        axes.set_xticks(positions)
    axes.set_title(f"modes: {report['modes']['covered']} of {len(histogram)} covered")
    legend_below(axes)


def draw_sample_bars(axes, report: dict, positions: np.ndarray, histogram: np.ndarray) -> None:
    """The high-quality samples per mode: one bar, or for an ensemble's report each member's
    share stacked in its own colour (which member put samples in which mode)."""
    members = (report.get("ensemble") or {}).get("members")
    if not members:
        axes.bar(positions, histogram, width=0.5, color="tab:blue", label="samples")
        return
    bottom = np.zeros(len(positions))
    for member in members:
        counts = np.asarray(member["histogram"], dtype=float)
        label = f"{member['model']} ({member['covered']} mode{'s' * (member['covered'] != 1)})"
        axes.bar(positions, counts, width=0.5, bottom=bottom, label=label)
        bottom += counts


def mark_modes(axes, modes: list[int], heights: np.ndarray, marker: str, color: str, name: str):
    """Markers over the bars of `modes` at `heights`, labelled "name (count)" in the legend;
    nothing when `modes` is empty."""
    if modes:
        axes.scatter(
            modes,
            heights,
            marker=marker,
            s=60,
            color=color,
            zorder=3,
            label=f"{name} ({len(modes)})",
            clip_on=False,
        )


def draw_heatmap(axes, grid: np.ndarray, n_missing: int, figure) -> None:
    """The samples / expected grid on a log colour scale (1 = as an exact sampler), missing
    modes (0) in red."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    # white: padding and weight-0 modes; red: missing modes (ratio 0, below the log scale)
    colours = colormaps["viridis"].with_extremes(bad="white", under="red")
    shown = np.where(grid > 0, grid, np.where(np.isnan(grid), np.nan, 1e-9))
    image = axes.imshow(
        shown, aspect="auto", cmap=colours, norm=LogNorm(0.1, 10.0), interpolation="nearest"
    )
    figure.colorbar(image, ax=axes, extend="min", label="samples / exact sampler")
    axes.set_xlabel(f"mode mod {HEATMAP_ROW}")
    axes.set_ylabel(f"mode // {HEATMAP_ROW}")
    axes.set_title(f"{n_missing} modes missing (red)")
