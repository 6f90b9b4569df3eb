"""The report's figure (service/figures.py): its title, per-mode bars or heat map, and legends
off the data (issue 20, "figures people would rather look at than read")."""

import numpy as np
import pytest

from lab.diagnostics import diagnose
from lab.diagnostics.mixture import GaussianMixture
from service.figures import HEATMAP_ROW, build_figure, figure_title, heatmap_grid, mode_counts


@pytest.fixture(scope="module")
def three_of_eight(ring8_reference: dict) -> tuple[np.ndarray, dict]:
    weights = [1 / 3 if mode in (0, 3, 5) else 0.0 for mode in range(8)]
    batch = GaussianMixture.from_spec({**ring8_reference, "weights": weights}).sample(600, 1)
    return batch, diagnose(batch, ring8_reference, "ring8")


def test_the_title_names_model_version_seed_and_the_key_numbers(three_of_eight) -> None:
    _, report = three_of_eight
    request = {"model": "ring8-gan", "version": 2, "seed": 11}
    head, numbers = figure_title(report, request).split("\n")
    assert head == "ring8-gan v2, seed 11 vs ring8: 600 samples, collapsed"
    assert numbers.startswith("modes 3/8 (exact sampler 8.0) | KL 0.981 (exact 0.006)")  # ln 8/3
    assert "high quality" in numbers and "coverage" in numbers


def test_an_upload_is_titled_as_one(three_of_eight) -> None:
    _, report = three_of_eight
    assert figure_title(report, None).startswith("upload vs ring8: 600 samples")


def test_mode_bars_compare_samples_with_an_exact_sampler(three_of_eight, ring8_reference):
    _, report = three_of_eight
    histogram, expected = mode_counts(report, ring8_reference)
    assert histogram.tolist() == report["modes"]["histogram"]
    np.testing.assert_allclose(expected, np.full(8, histogram.sum() / 8))


def test_thousand_modes_make_a_10_by_100_heat_map_with_the_missing_at_zero() -> None:
    histogram = np.ones(1000, dtype=np.int64)
    histogram[[7, 512]] = 0
    expected = np.ones(1000)
    expected[999] = 0.0  # a mode of weight 0: not missing, blank
    grid = heatmap_grid(histogram, expected)
    assert grid.shape == (1000 // HEATMAP_ROW, HEATMAP_ROW) == (10, 100)
    assert grid[0, 7] == 0 and grid[5, 12] == 0 and np.isnan(grid[9, 99])
    assert np.nansum(grid) == 997


def test_legends_sit_off_the_data(three_of_eight, ring8_reference) -> None:
    batch, report = three_of_eight
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = build_figure(report, batch, ring8_reference, None)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    legends = [(axes, axes.get_legend()) for axes in figure.axes if axes.get_legend()]
    assert len(legends) == 2  # the scatter and the mode bars
    for axes, legend in legends:
        plot_area = axes.get_window_extent(renderer)
        assert not legend.get_window_extent(renderer).overlaps(plot_area)


def test_missing_modes_are_marked_on_the_bars(three_of_eight, ring8_reference) -> None:
    batch, report = three_of_eight
    bars = build_figure(report, batch, ring8_reference, None).axes[-1]
    crosses = [c for c in bars.collections if c.get_label().startswith("missing")]
    assert len(crosses) == 1 and crosses[0].get_label() == "missing (5)"
    np.testing.assert_array_equal(crosses[0].get_offsets()[:, 0], [1, 2, 4, 6, 7])


def test_starved_modes_are_marked_on_the_bars(ring8_reference) -> None:
    weights = [0.0 if mode == 6 else 1 / 7 for mode in range(8)]
    batch = GaussianMixture.from_spec({**ring8_reference, "weights": weights}).sample(1400, 2)
    batch = np.concatenate([batch, np.asarray(ring8_reference["centres"])[[6]]])  # one stray
    report = diagnose(batch, ring8_reference, "ring8")
    assert report["modes"]["starved"] == [6]
    bars = build_figure(report, batch, ring8_reference, None).axes[-1]
    marks = [c for c in bars.collections if c.get_label().startswith("starved")]
    assert len(marks) == 1 and marks[0].get_label() == "starved (1)"
    np.testing.assert_array_equal(marks[0].get_offsets(), [[6, 1]])
