"""diagnose(): coverage, divergences against scipy, input errors and JSON safety."""

import json

import numpy as np
import pytest
from scipy import stats

from lab.diagnostics import DiagnosticsError, diagnose
from lab.diagnostics.statistics import expected_kl_ideal

SUBSETS = [
    ("ring8", [0]),
    ("ring8", [1, 4, 6]),
    ("ring8", [0, 1, 2, 3, 4, 5, 6]),
    ("grid25", [12]),
    ("grid25", list(range(0, 25, 2))),
    ("grid25", list(range(24))),
]
REPORT_KEYS = {
    "reference",
    "n_samples",
    "modes",
    "high_quality_fraction",
    "kl",
    "reverse_kl",
    "chi_square",
    "expected_covered_ideal",
    "expected_covered_ideal_std",
    "duplicates",
    "verdict",
}


def _plain_leaf_types(value: object) -> set[type]:
    """Exact types of the leaves of nested dicts and lists (np.float64 is not float here)."""
    if isinstance(value, dict):
        return set().union(*map(_plain_leaf_types, value.values()))
    if isinstance(value, list):
        return set().union(set(), *map(_plain_leaf_types, value))
    return {type(value)}


@pytest.mark.parametrize("name, modes", SUBSETS)
def test_covers_exactly_the_drawn_modes(references: dict, draw, name: str, modes: list) -> None:
    report = diagnose(draw(references[name], 2500, modes), references[name], name)
    total = len(references[name]["centres"])
    assert (report["modes"]["total"], report["modes"]["covered"]) == (total, len(modes))
    assert report["modes"]["missing"] == sorted(set(range(total)) - set(modes))


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_histogram_counts_high_quality_samples(references: dict, draw, name: str) -> None:
    report = diagnose(draw(references[name], 2500, seed=1), references[name], name)
    assert all(type(count) is int for count in report["modes"]["histogram"])
    assert sum(report["modes"]["histogram"]) == round(report["high_quality_fraction"] * 2500)
    assert report["high_quality_fraction"] == pytest.approx(1 - np.exp(-4.5), abs=0.01)


@pytest.mark.parametrize("name, modes", SUBSETS)
def test_kl_matches_scipy(references: dict, draw, name: str, modes: list) -> None:
    report = diagnose(draw(references[name], 700, modes, seed=2), references[name], name)
    histogram = np.array(report["modes"]["histogram"])
    weights = np.full(len(histogram), 1.0 / len(histogram))
    assert report["kl"] == pytest.approx(
        stats.entropy(histogram / histogram.sum(), weights), rel=1e-12, abs=1e-15
    )


@pytest.mark.parametrize("name, modes", SUBSETS)
def test_reverse_kl_matches_scipy_with_jeffreys_smoothing(
    references: dict, draw, name: str, modes: list
) -> None:
    report = diagnose(draw(references[name], 700, modes, seed=3), references[name], name)
    histogram = np.array(report["modes"]["histogram"])
    smoothed = (histogram + 0.5) / (histogram.sum() + 0.5 * len(histogram))
    weights = np.full(len(histogram), 1.0 / len(histogram))
    assert report["reverse_kl"] == pytest.approx(stats.entropy(weights, smoothed), rel=1e-12)


@pytest.mark.parametrize("name, modes", SUBSETS)
def test_chi_square_matches_scipy(references: dict, draw, name: str, modes: list) -> None:
    report = diagnose(draw(references[name], 700, modes, seed=4), references[name], name)
    histogram = np.array(report["modes"]["histogram"])
    expected = np.full(len(histogram), histogram.sum() / len(histogram))
    reference = stats.chisquare(histogram, expected)
    assert report["chi_square"]["dof"] == len(histogram) - 1
    assert report["chi_square"]["statistic"] == pytest.approx(reference.statistic, rel=1e-12)
    assert report["chi_square"]["p_value"] == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)


def test_weighted_reference_matches_scipy(draw) -> None:
    reference = {
        "type": "gaussian_mixture",
        "dim": 1,
        "centres": [[0], [1], [2], [3]],
        "std": 0.05,
        "weights": [4, 3, 2, 1],
    }
    samples = np.concatenate([draw(reference, 300, seed=5), draw(reference, 60, [3], seed=6)])
    report = diagnose(samples, reference, "weighted")
    histogram, weights = np.array(report["modes"]["histogram"]), np.array([0.4, 0.3, 0.2, 0.1])
    assert report["kl"] == pytest.approx(stats.entropy(histogram, weights), rel=1e-12)
    assert report["chi_square"]["statistic"] == pytest.approx(
        stats.chisquare(histogram, histogram.sum() * weights).statistic, rel=1e-12
    )


@pytest.mark.parametrize("n_modes, n_samples", [(25, 10), (8, 2500), (1000, 1000)])
def test_expected_kl_matches_monte_carlo(n_modes: int, n_samples: int) -> None:
    weights = np.full(n_modes, 1.0 / n_modes)
    shares = np.random.default_rng(7).multinomial(n_samples, weights, size=2000) / n_samples
    kls = [stats.entropy(share, weights) for share in shares]
    mean, std = expected_kl_ideal(weights, n_samples)
    assert abs(np.mean(kls) - mean) < 4 * np.std(kls) / np.sqrt(len(kls))
    assert std == pytest.approx(np.std(kls), rel=0.3)


def test_zero_weight_mode_hit_gives_null_kl(references: dict) -> None:
    reference = {**references["ring8"], "weights": [1.0] * 7 + [0.0]}
    samples = np.array(reference["centres"])
    report = diagnose(samples, reference, "ring7")
    assert report["kl"] is None and report["modes"]["missing"] == []
    assert report["verdict"]["status"] == "partial_collapse"
    assert "infinite" in report["verdict"]["reasons"][0]


@pytest.mark.parametrize(
    "samples, message",
    [
        (np.zeros((10, 3)), "3 columns but the reference has dimension 2"),
        (np.zeros(10), "2-D array \\[N, 2\\], got shape \\(10,\\)"),
        (np.zeros((2, 5, 2)), "2-D array"),
        (np.zeros((0, 2)), "no samples"),
        (np.array([[0.0, 0.0], [np.nan, 1.0], [np.inf, 0.0]]), "2 of 3 rows contain NaN or Inf"),
        (np.array([[0.0, 0.0]], dtype=object), "dtype object"),
        (np.array([["a", "b"]]), "dtype <U1"),
        (np.ones((3, 2), dtype=bool), "dtype bool"),
    ],
)
def test_unusable_samples_raise(references: dict, samples: np.ndarray, message: str) -> None:
    with pytest.raises(DiagnosticsError, match=message):
        diagnose(samples, references["ring8"], "ring8")


def test_diagnostics_error_is_a_value_error() -> None:
    assert issubclass(DiagnosticsError, ValueError)


def test_unsupported_reference_raises() -> None:
    with pytest.raises(DiagnosticsError, match="unsupported reference type 'kernel'"):
        diagnose(np.zeros((3, 2)), {"type": "kernel"}, "x")


def test_classifier_reference_needs_the_classifier_outputs() -> None:
    with pytest.raises(DiagnosticsError, match="needs the classifier's outputs"):
        diagnose(np.zeros((3, 1, 8, 8)), {"type": "classifier"}, "digits")


def test_integer_samples_are_accepted(references: dict) -> None:
    report = diagnose(np.array([[1, 0], [0, 1], [-1, 0]]), references["ring8"], "ring8")
    assert report["modes"]["covered"] == 3


@pytest.mark.parametrize(
    "name, samples",
    [
        ("ring8", "exact"),
        ("ring8", np.tile([[1.0, 0.0]], (2500, 1))),
        ("ring8", np.tile([[10.0, 0.0]], (2500, 1))),
        ("grid25", np.array([[0.0, 0.0]])),
        ("grid25", "exact"),
    ],
)
def test_report_is_strict_json(references: dict, draw, name: str, samples) -> None:
    batch = draw(references[name], 2500) if isinstance(samples, str) else samples
    report = diagnose(batch, references[name], name)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert _plain_leaf_types(report) <= {str, int, float, bool, type(None)}
    assert REPORT_KEYS <= set(report) and report["reference"] == name
