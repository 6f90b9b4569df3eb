"""The verdict rules on the benchmark geometries (thresholds from lab.diagnostics.verdict),
and on typed statistics built directly (ModeStats, FeatureStats)."""

import math
from dataclasses import replace

import numpy as np
import pytest

from lab.diagnostics import diagnose
from lab.diagnostics.statistics import (
    ChiSquare,
    FeatureStats,
    ModeStats,
    histogram_stats,
    no_feature_stats,
)
from lab.diagnostics.verdict import (
    COLLAPSE_COVERAGE_RATIO,
    DUPLICATE_COLLAPSE_FRACTION,
    LOW_QUALITY_FRACTION,
    STARVED_RATIO,
    binomial_lower_tail,
    starved_modes,
    verdict,
)


@pytest.mark.parametrize("name, mode", [("ring8", 0), ("ring8", 5), ("grid25", 12)])
def test_every_sample_on_one_centre_is_collapsed(references: dict, name: str, mode: int) -> None:
    samples = np.tile(references[name]["centres"][mode], (2500, 1))
    report = diagnose(samples, references[name], name)
    assert report["verdict"]["status"] == "collapsed"
    assert any("identical outputs" in reason for reason in report["verdict"]["reasons"])


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_every_sample_far_away_is_collapsed(references: dict, name: str) -> None:
    report = diagnose(np.tile([[30.0, -30.0]], (2500, 1)), references[name], name)
    assert (report["verdict"]["status"], report["high_quality_fraction"]) == ("collapsed", 0.0)
    assert report["kl"] is None and report["chi_square"]["p_value"] is None


@pytest.mark.parametrize("name", ["ring8", "grid25"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_sampler_is_healthy(references: dict, draw, name: str, seed: int) -> None:
    report = diagnose(draw(references[name], 2500, seed=seed), references[name], name)
    assert report["verdict"]["status"] == "healthy"
    assert report["modes"]["covered"] == report["modes"]["total"] and report["kl"] < 0.02
    assert "covers" in report["verdict"]["reasons"][0]


def test_three_of_eight_modes_is_collapsed(references: dict, draw) -> None:
    # 3 < COLLAPSE_COVERAGE_RATIO * 8 modes an exact sampler of 2500 covers: collapsed.
    report = diagnose(draw(references["ring8"], 2500, [0, 3, 5]), references["ring8"], "ring8")
    assert 3 < COLLAPSE_COVERAGE_RATIO * report["expected_covered_ideal"]
    assert report["verdict"]["status"] == "collapsed"


@pytest.mark.parametrize("name, modes", [("ring8", range(7)), ("grid25", range(1, 25))])
def test_one_missing_mode_is_partial_collapse(references: dict, draw, name: str, modes) -> None:
    report = diagnose(draw(references[name], 2500, list(modes)), references[name], name)
    assert report["verdict"]["status"] == "partial_collapse"
    assert any("more modes are missing" in reason for reason in report["verdict"]["reasons"])


def test_imbalance_alone_is_partial_collapse(references: dict, draw) -> None:
    ring8 = references["ring8"]
    samples = np.concatenate([draw(ring8, 2500, seed=8), draw(ring8, 2500, [0], seed=9)])
    report = diagnose(samples, ring8, "ring8")
    assert report["modes"]["covered"] == 8 and report["verdict"]["status"] == "partial_collapse"
    assert any(reason.startswith("mode imbalance") for reason in report["verdict"]["reasons"])


@pytest.mark.parametrize("seed", range(5))
def test_small_exact_batch_is_not_blamed(references: dict, draw, seed: int) -> None:
    # 10 samples cannot see 25 modes: compared with an exact sampler of 10, nothing is wrong,
    # and too few to tell whether anything is (issue 20: `inconclusive`, not `healthy`).
    report = diagnose(draw(references["grid25"], 10, seed=seed), references["grid25"], "grid25")
    assert report["verdict"]["status"] == "inconclusive"
    assert "send at least 25 high-quality samples" in report["verdict"]["reasons"][0]


def test_thousand_modes_from_thousand_samples_is_healthy(draw) -> None:
    # An exact sampler covers about 632 of 1000 equal modes with 1000 samples: not collapse.
    centres = [[float(x), float(y)] for x in range(40) for y in range(25)]
    reference = {
        "type": "gaussian_mixture",
        "dim": 2,
        "centres": centres,
        "std": 0.01,
        "weights": [1.0] * 1000,
    }
    report = diagnose(draw(reference, 1000, seed=10), reference, "grid1000")
    assert 580 < report["modes"]["covered"] < 680
    assert report["verdict"]["status"] == "healthy"


def test_half_duplicated_rows_are_collapsed(references: dict, draw) -> None:
    half = draw(references["grid25"], 1250, seed=11)
    report = diagnose(np.concatenate([half, half]), references["grid25"], "grid25")
    assert report["duplicates"]["exact_fraction"] == DUPLICATE_COLLAPSE_FRACTION
    assert report["verdict"]["status"] == "collapsed"


def test_low_quality_warns_without_changing_status(references: dict, draw) -> None:
    blurred = {**references["ring8"], "std": 0.05}  # draw with 5x the reference std
    report = diagnose(draw(blurred, 2500, seed=12), references["ring8"], "ring8")
    assert report["high_quality_fraction"] < LOW_QUALITY_FRACTION
    assert report["verdict"]["status"] == "healthy"
    assert report["verdict"]["reasons"][-1].startswith("low sample quality")


def test_single_sample_is_not_blamed_for_one_mode(references: dict) -> None:
    report = diagnose(np.array([[1.0, 0.0]]), references["ring8"], "ring8")
    assert report["verdict"]["status"] == "inconclusive"


FEATURES_ONLY = FeatureStats(
    n_samples=1000,
    n_reference=1000,
    coverage=0.96,
    coverage_expected_identical=0.96,
    precision=0.9,
    ndb=3,
    ndb_bins=50,
    vendi=40.0,
    vendi_reference=42.0,
    duplicate_fraction=0.0,
    near_duplicate_fraction=0.0,
)
RING8_EXACT = ModeStats(  # 2,500 exact draws on ring8, about what diagnose measures
    n_samples=2500,
    total=8,
    support=8,
    covered=8,
    missing=[],
    histogram=np.full(8, 309),
    high_quality_count=2472,
    high_quality_fraction=0.9888,
    kl=0.0015,
    reverse_kl=0.0015,
    kl_expected_ideal=0.0014,
    kl_expected_ideal_std=0.0008,
    chi_square=ChiSquare(statistic=7.0, dof=7, p_value=0.43),
    expected_covered_ideal=8.0,
    expected_covered_ideal_std=0.0,
    expected_covered_same_quality=8.0,
    expected_covered_same_quality_std=0.0,
    high_quality_rule="lie within 3 std of a mode centre",
    hit_shares=np.full(8, 1 / 8),
)


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({}, "healthy", "coverage 0.960"),
        ({"vendi": 15.0}, "partial_collapse", "low diversity"),
        ({"near_duplicate_fraction": 0.2}, "partial_collapse", "samples pile up"),
        ({"near_duplicate_fraction": 0.6}, "collapsed", "near-identical outputs"),
        ({"coverage": 0.4}, "collapsed", "coverage 0.400"),
        ({"coverage": 0.85}, "partial_collapse", "parts of the reference are missed"),
        ({"ndb": 15}, "partial_collapse", "K-means bins differ"),
        ({"precision": 0.3}, "healthy", "low sample quality: precision"),
    ],
)
def test_feature_rules(change, status, fragment) -> None:
    result = verdict(None, replace(FEATURES_ONLY, **change))
    assert result.status == status
    assert any(fragment in reason for reason in result.reasons), result.reasons


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({}, "healthy", "covers 8 of 8 modes"),
        ({"covered": 7, "missing": [3]}, "partial_collapse", "more modes are missing"),
        ({"covered": 3}, "collapsed", "fewer than 0.5 x the 8.0"),
        ({"high_quality_count": 3}, "inconclusive", "send at least 13 high-quality samples"),
        ({"covered": 1}, "collapsed", "rule: <= 1 mode"),
        ({"kl": 0.2}, "partial_collapse", "mode imbalance: KL"),
        ({"kl": float("inf")}, "partial_collapse", "KL(generated || reference) is infinite"),
        ({"high_quality_count": 0, "kl": None}, "collapsed", "no high-quality sample"),
        ({"high_quality_fraction": 0.2}, "healthy", "only 20.0% of samples lie within 3 std"),
    ],
)
def test_mode_rules_read_typed_statistics(change, status, fragment) -> None:
    result = verdict(replace(RING8_EXACT, **change), FEATURES_ONLY)
    assert result.status == status
    assert any(fragment in reason for reason in result.reasons), result.reasons


def test_with_modes_the_feature_only_rules_stay_silent() -> None:
    # Vendi and precision judge a reference without modes; with modes, the modes decide.
    features = replace(FEATURES_ONLY, vendi=15.0, precision=0.3, coverage=0.4)
    result = verdict(RING8_EXACT, features)
    assert result.status == "partial_collapse"  # coverage 0.4 adds evidence, not collapse
    assert not any("diversity" in r or "precision" in r for r in result.reasons), result.reasons


def test_blurred_samples_skip_the_feature_evidence() -> None:
    blurred = replace(RING8_EXACT, high_quality_fraction=0.3)
    result = verdict(blurred, replace(FEATURES_ONLY, coverage=0.85, ndb=15))
    assert result.status == "healthy" and result.reasons[-1].startswith("low sample quality")
    # the warning says which rules it left unjudged, so a user does not read 15 bins as passed
    assert result.reasons[-1].endswith("(warning below 50%; coverage and NDB not judged below it)")
    # the modes-only verdict measured no feature rule, so it names none
    modes_only = verdict(blurred, no_feature_stats(1000))
    assert modes_only.reasons[-1].endswith("(warning below 50%)")


def exact_batch(mixture_spec: dict, n: int, seed: int) -> dict:
    from lab.diagnostics.mixture import GaussianMixture

    samples = GaussianMixture.from_spec(mixture_spec).sample(n, seed)
    return diagnose(samples, mixture_spec, "ring8")


RING8_SPEC = {
    "type": "gaussian_mixture",
    "dim": 2,
    "centres": [[np.cos(a), np.sin(a)] for a in 2 * np.pi * np.arange(8) / 8],
    "std": 0.01,
    "weights": [1 / 8] * 8,
}


def test_three_exact_samples_are_inconclusive_not_healthy() -> None:
    # Issue 20: 3 samples on ring8 were `healthy`; no rule can fire on so few.
    report = exact_batch(RING8_SPEC, 3, seed=0)
    assert report["verdict"]["status"] == "inconclusive", report["verdict"]
    assert "send at least 13 high-quality samples" in report["verdict"]["reasons"][0]


def test_enough_exact_samples_are_healthy_again() -> None:
    report = exact_batch(RING8_SPEC, 64, seed=0)
    assert report["verdict"]["status"] == "healthy", report["verdict"]


@pytest.mark.parametrize("n", [13, 20, 40])
def test_the_named_size_lets_the_rule_see_a_half_collapse(n) -> None:
    # At the size the inconclusive reason names, a sampler on 4 of the 8 modes is caught.
    from lab.diagnostics.mixture import GaussianMixture

    half = dict(RING8_SPEC, weights=[0.25, 0.25, 0.25, 0.25, 0, 0, 0, 0])
    hits = 0
    for seed in range(200):
        samples = GaussianMixture.from_spec(half).sample(n, seed)
        hits += diagnose(samples, RING8_SPEC, "ring8")["verdict"]["status"] != "healthy"
    assert hits / 200 >= 0.5


def test_unreadable_samples_lower_quality_not_coverage() -> None:
    # Issue 20: 38 confident samples of 500 on 36 modes is what 38 exact samples cover; the
    # other 462 are low quality, not 357 missing modes (it used to say `collapsed`).
    histogram = np.zeros(1000, dtype=np.int64)
    histogram[:36] = [2, 2] + [1] * 34
    weights = np.full(1000, 1e-3)
    modes = histogram_stats(histogram, 500, weights, weights, "are classified confidently")
    assert modes.expected_covered_same_quality == pytest.approx(37.3, abs=0.1)
    result = verdict(modes, FEATURES_ONLY)
    assert result.status == "inconclusive", result.reasons
    assert result.reasons[-1].startswith("low sample quality")
    assert not any("fewer than 0.5 x" in reason for reason in result.reasons)


@pytest.mark.parametrize(
    ("count", "n", "p"), [(0, 50, 0.1), (3, 490, 0.1), (12, 2500, 0.125), (40, 20000, 0.01)]
)
def test_binomial_lower_tail_is_the_exact_sum(count: int, n: int, p: float) -> None:
    exact = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(count + 1))
    tail = binomial_lower_tail(np.array([count]), n, np.array([p]))[0]
    assert tail == pytest.approx(exact, rel=1e-10)


def test_a_mode_with_one_stray_sample_is_starved_not_covered_alone(references, draw) -> None:
    # Issue 20: real clusters catch a few strays of their neighbours, so a mode a batch never
    # produces still gets one or two samples; the starved rule names it all the same.
    ring8 = references["ring8"]
    samples = np.concatenate(
        [draw(ring8, 2500, [0, 1, 2, 4, 5, 6, 7], seed=3), draw(ring8, 2, [3])]
    )
    report = diagnose(samples, ring8, "ring8")
    assert report["modes"]["missing"] == [] and report["modes"]["starved"] == [3]
    assert report["verdict"]["status"] == "partial_collapse"
    reason = next(r for r in report["verdict"]["reasons"] if r.startswith("starved modes: 3 (2 vs"))
    assert f"fewer than {STARVED_RATIO:g} x expected" in reason


@pytest.mark.parametrize("name", ["ring8", "grid25"])
@pytest.mark.parametrize("seed", range(20))
def test_exact_draws_starve_no_mode(references: dict, draw, name: str, seed: int) -> None:
    report = diagnose(draw(references[name], 400, seed=100 + seed), references[name], name)
    assert report["modes"]["starved"] == []


def test_starved_needs_both_far_fewer_and_beyond_chance() -> None:
    weights = np.array([0.5, 0.5])

    def starved(counts: list[int]) -> list[int]:
        stats = histogram_stats(np.array(counts), sum(counts), weights, weights, "rule")
        return [s.mode for s in starved_modes(stats)]

    assert starved([92, 8]) == [1]  # 8 < 50 / 4, and P(<= 8) ~ 1e-18
    assert starved([8700, 1300]) == []  # beyond chance, but 1300 >= 5000 / 4 (KL's business)
    assert starved([9, 1]) == []  # 1 < 5 / 4, but P(<= 1) = 11 / 1024 > 0.01 / 2
    assert starved([11, 1]) == [1]  # 1 < 6 / 4 and P(<= 1) = 13 / 4096 < 0.01 / 2
    assert starved([12, 0]) == []  # a missing mode is not starved: the coverage rule's
