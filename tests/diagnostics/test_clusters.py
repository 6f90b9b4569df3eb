"""Discovered modes of an uploaded reference: K rule, determinism, calibration, naming."""

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from lab.diagnostics import DiagnosticsError, diagnose
from lab.diagnostics.clusters import (
    ClusterConfig,
    cluster_mode_stats,
    discover_modes,
    modes_from_card,
    pairwise_distances,
    silhouette,
)
from lab.diagnostics.kmeans import cluster_sums

from .conftest import grid25_reference, ring8_reference

RAW = {"type": "features", "embedding": "raw", "sample_shape": [2]}


def true_modes(reference: dict, modes) -> np.ndarray:
    """The true mixture mode nearest each discovered centre, int [K]."""
    centres = np.asarray(reference["centres"])
    return np.argmin(((modes.centres[:, None] - centres[None]) ** 2).sum(-1), axis=1)


@pytest.fixture(scope="module")
def ring8_modes():
    points = ring8_draw(4000, seed=100)
    return points, *discover_modes(points)


def ring8_draw(n: int, seed: int, modes: list[int] | None = None) -> np.ndarray:
    from tests.helpers import draw_mixture

    return draw_mixture(ring8_reference(), n, modes, seed)


@pytest.mark.parametrize(("reference", "expected"), [(ring8_reference, 8), (grid25_reference, 25)])
def test_silhouette_rule_finds_the_mixture_modes(reference, expected):
    from tests.helpers import draw_mixture

    spec = reference()
    modes, card = discover_modes(draw_mixture(spec, 2500, None, seed=5))
    assert card["k"] == expected and card["k_rule"] == "silhouette"
    assert sorted(true_modes(spec, modes).tolist()) == list(range(expected))  # one centre each
    assert max(card["silhouette"], key=card["silhouette"].get) == str(expected)


def test_silhouette_rule_finds_ten_clusters_in_64_dimensions():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(10, 64)) * 0.6
    labels = rng.integers(10, size=3000)
    points = centres[labels] + rng.normal(size=(3000, 64)) / 8.0
    assert discover_modes(points)[1]["k"] == 10


def test_silhouette_equals_scikit_learn():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 3))
    labels = rng.integers(4, size=300)
    ours = silhouette(pairwise_distances(points), labels, 4)
    assert ours == pytest.approx(silhouette_score(points, labels), rel=1e-10)


def test_cluster_sums_equal_add_at_bit_for_bit():
    rng = np.random.default_rng(1)
    points, labels = rng.normal(size=(500, 7)) * 100, rng.integers(6, size=500)
    expected = np.zeros((6, 7))
    np.add.at(expected, labels, points)
    assert np.array_equal(cluster_sums(np.ascontiguousarray(points.T), labels, 6), expected)


def test_discovery_is_deterministic_for_a_seed():
    points = ring8_draw(1000, seed=7)
    (first, card), (second, again) = discover_modes(points), discover_modes(points)
    assert card == again
    assert np.array_equal(first.centres, second.centres)
    other = discover_modes(points, config=ClusterConfig(seed=1))[0]
    assert other.n_modes == 8  # another split and start, the same modes
    assert np.allclose(np.sort(other.centres, axis=0), np.sort(first.centres, axis=0), atol=0.01)


def test_card_round_trip(ring8_modes):
    _, modes, card = ring8_modes
    back = modes_from_card(card, modes.centres)
    for field in ("radii", "weights", "success", "exemplar_rows"):
        assert np.array_equal(getattr(back, field), getattr(modes, field))


def test_modes_are_ordered_by_share_with_exemplars_nearest_first(ring8_modes):
    points, modes, card = ring8_modes
    assert np.all(np.diff(modes.weights) <= 0) and modes.weights.sum() == pytest.approx(1.0)
    assert card["n_fit"] + card["n_held_out"] == len(points) == 4000
    for mode in range(modes.n_modes):
        rows = modes.exemplars_of(mode)
        distance = np.linalg.norm(points[rows] - modes.centres[mode], axis=1)
        assert len(rows) == 4 and np.all(np.diff(distance) >= 0)
        mine = np.argmin(np.linalg.norm(points[:, None] - modes.centres[None], axis=2), axis=1)
        others = np.linalg.norm(points[mine == mode] - modes.centres[mode], axis=1)
        assert distance[-1] <= np.sort(others)[3]


def test_held_out_calibration(ring8_modes):
    """The radius is the fit rows' 99% quantile; held-out rows land within it at ~99%, and
    success = share x calibrated rate."""
    _, modes, card = ring8_modes
    assert 0.97 <= card["held_out_high_quality"] <= 1.0
    assert np.all(modes.success <= modes.weights) and np.all(modes.success > 0.95 * modes.weights)


@pytest.mark.parametrize("block_size", [1, 7, 4096])
def test_counts_do_not_depend_on_block_size(ring8_modes, block_size):
    _, modes, _ = ring8_modes
    batch = ring8_draw(500, seed=2)
    expected = cluster_mode_stats(batch, modes).histogram
    assert np.array_equal(cluster_mode_stats(batch, modes, block_size).histogram, expected)


def test_three_missing_of_eight_are_named(ring8_modes):
    points, modes, _ = ring8_modes
    removed = [1, 4, 6]
    batch = ring8_draw(2500, seed=11, modes=[m for m in range(8) if m not in removed])
    report = diagnose(batch, RAW, "ring8-upload", points, clusters=modes)
    named = true_modes(ring8_reference(), modes)[report["modes"]["missing"]]
    assert sorted(named.tolist()) == removed
    assert report["verdict"]["status"] == "partial_collapse"
    exemplars = report["modes"]["missing_exemplars"]
    assert [e["mode"] for e in exemplars] == report["modes"]["missing"]
    for entry in exemplars:  # the named reference rows sit at the missing centre
        near = points[entry["reference_rows"]] - modes.centres[entry["mode"]]
        assert len(entry["reference_rows"]) == 4 and np.all(np.linalg.norm(near, axis=1) < 0.05)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_a_second_real_draw_is_healthy(ring8_modes, seed):
    points, modes, _ = ring8_modes
    report = diagnose(ring8_draw(2500, seed=seed), RAW, "ring8-upload", points, clusters=modes)
    assert report["modes"]["covered"] == 8 and report["modes"]["missing_exemplars"] == []
    assert report["verdict"]["status"] == "healthy", report["verdict"]


def test_far_samples_are_low_quality(ring8_modes):
    points, modes, _ = ring8_modes
    report = diagnose(ring8_draw(500, seed=3) * 0.5, RAW, "r", points, clusters=modes)
    assert report["high_quality_fraction"] == 0.0
    assert report["verdict"]["status"] == "collapsed"
    assert "radius of their nearest discovered mode" in report["verdict"]["reasons"][0]


@pytest.mark.parametrize(
    ("rows", "modes", "message"),
    [
        (20, None, "upload at least 25 rows"),
        (100, 9, "2 <= K <= 8 for 100 reference rows"),
        (5000, 101, "100 modes at most"),
    ],
)
def test_too_few_rows_or_modes_out_of_range(rows, modes, message):
    with pytest.raises(DiagnosticsError, match=message):
        discover_modes(ring8_draw(rows, seed=0), modes)


def test_fewer_distinct_rows_than_modes_names_the_fix():
    points = np.repeat(np.eye(3), 40, axis=0)
    with pytest.raises(DiagnosticsError, match="pass a smaller modes=K"):
        discover_modes(points, 5)


def test_auto_never_fails_where_some_k_fits():
    # 300 rows of one Gaussian: the silhouette (on a subsample) liked K=17, whose K-means on all
    # the fit rows left a cluster of 1 row, and `auto`, which the user never chose, was a 422
    # telling them to pass a smaller modes=K. It takes the best K that fits instead.
    rows = np.random.default_rng(0).normal(size=(300, 2))
    modes, card = discover_modes(rows)
    assert modes.n_modes == card["k"] and str(modes.n_modes) in card["silhouette"]
    assert min(card["weights"]) * 300 >= 2  # every mode holds >= 2 reference rows


def test_a_mode_with_a_stray_sample_is_named_starved_with_exemplars(ring8_modes):
    points, modes, _ = ring8_modes
    batch = ring8_draw(2500, seed=12, modes=[0, 1, 2, 3, 5, 6, 7])
    gone = int(true_modes(ring8_reference(), modes).tolist().index(4))  # the cluster of mode 4
    stray = modes.centres[gone][None]  # one sample right on the removed mode's centre
    report = diagnose(np.concatenate([batch, stray]), RAW, "ring8-upload", points, clusters=modes)
    assert report["modes"]["missing"] == [] and report["modes"]["starved"] == [gone]
    assert report["verdict"]["status"] == "partial_collapse"
    assert report["modes"]["missing_exemplars"] == []
    assert [e["mode"] for e in report["modes"]["starved_exemplars"]] == [gone]
