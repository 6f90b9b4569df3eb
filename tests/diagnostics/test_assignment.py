"""assignment.nearest_labels gives nearest_centres' labels bit for bit, whatever decides them.

Each case compares with blocks.nearest_centres, the plain reference, on seeded data built so
that each stage has work: Gaussian points (the float32 filter decides), a tight cluster far
from the rest (float32 cannot resolve it: float64 tiles of their own), integer points halfway
between integer centres and duplicate centres (exact ties: nearest_centres' own tiles).
"""

import numpy as np
import pytest

from lab.diagnostics import assignment
from lab.diagnostics.assignment import LabelledPoints, nearest_labels
from lab.diagnostics.blocks import nearest_centres


def gaussian(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points = rng.standard_normal((3000, 8))
    return points, points[rng.choice(3000, 40, replace=False)].copy()


def far_cluster(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    near_origin = rng.standard_normal((1500, 8))
    cluster = 1e4 * np.eye(8)[0] + 1e-2 * rng.standard_normal((1500, 8))
    points = np.concatenate([near_origin, cluster])
    return points, np.concatenate([near_origin[:5], cluster[:30]])


def integer_ties(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points = rng.integers(0, 9, (3000, 3)).astype(np.float64)
    centres = 2.0 * rng.integers(0, 5, (30, 3))
    centres[20:] = centres[:10]  # duplicates: the lower index wins
    return points, centres


CASES = {"gaussian": gaussian, "far cluster": far_cluster, "integer ties": integer_ties}


def spy(monkeypatch, name: str) -> list[int]:
    """Count the points handed to assignment.<name> (its last argument) in a list."""
    seen, original = [], getattr(assignment, name)

    def counted(*arguments):
        seen.append(arguments[-1].size)
        return original(*arguments)

    monkeypatch.setattr(assignment, name, counted)
    return seen


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("guess", ["none", "right", "random"])
@pytest.mark.parametrize("block_size", [100, 2048])
def test_labels_equal_nearest_centres(monkeypatch, case: str, guess: str, block_size: int):
    rng = np.random.default_rng(0)
    points, centres = CASES[case](rng)
    expected = nearest_centres(points, centres)[0]
    guesses = {
        "none": None,
        "right": expected,
        "random": rng.integers(0, centres.shape[0], points.shape[0]),
    }[guess]
    exactly, ties = spy(monkeypatch, "relabel_exactly"), spy(monkeypatch, "relabel_ties")
    labels = nearest_labels(LabelledPoints.prepare(points), centres, guesses, None, block_size)
    np.testing.assert_array_equal(labels, expected)
    if case == "far cluster":  # float32 cannot separate the cluster's centres
        assert exactly[0] >= 1000
    if case == "integer ties":  # exact ties reach nearest_centres' own tiles
        assert ties[0] >= 100


@pytest.mark.parametrize("n_centres", [1, 2, 300])
def test_labels_any_number_of_centres(n_centres: int):
    rng = np.random.default_rng(1)
    points = rng.standard_normal((2000, 4))
    centres = rng.standard_normal((n_centres, 4))
    labels = nearest_labels(LabelledPoints.prepare(points), centres)
    np.testing.assert_array_equal(labels, nearest_centres(points, centres)[0])
