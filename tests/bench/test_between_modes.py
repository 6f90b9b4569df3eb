"""bench.between_modes: the neighbour segments of the mixtures and the three shares."""

import numpy as np
import pytest

from bench.between_modes import neighbour_segments, shares
from trainer.datasets import get_dataset


@pytest.mark.parametrize(("name", "segments"), [("ring8", 8), ("grid25", 40)])
def test_neighbour_segments_are_the_ring_chords_and_the_grid_edges(name, segments):
    centres = get_dataset(name).centres.numpy()
    found = neighbour_segments(centres)
    assert len(found) == segments
    lengths = {round(float(np.linalg.norm(b - a)), 9) for a, b in found}
    assert len(lengths) == 1


def test_shares_sort_points_into_on_mode_between_and_elsewhere():
    reference = get_dataset("grid25").reference_spec()
    points = np.array(
        [
            [2.0, 2.0],  # on a mode
            [2.1, 2.0],  # 0.1 = 2 std from it: still high quality
            [3.0, 2.0],  # half-way along a grid edge
            [3.0, 2.15],  # 0.15 off that edge: within the band (0.1 x 2)
            [3.0, 3.0],  # the middle of a grid cell: elsewhere
            [9.0, 9.0],  # off the grid: elsewhere
        ],
        dtype=np.float32,
    )
    found = shares(points, reference)
    assert found == pytest.approx({"high_quality": 2 / 6, "between": 2 / 6, "elsewhere": 2 / 6})
