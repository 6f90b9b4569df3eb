"""The verdict rules: healthy | partial_collapse | collapsed, with the reasons that fired.

Every threshold is a named constant here and is documented in docs/diagnostics.md. Rules that
depend on coverage or KL compare with what an *exact* sampler of the same mixture and the same
number of samples scores, so a small batch is never blamed for modes it could not have seen.
"""

import math
from typing import Any

# collapsed
SINGLE_MODE_MAX_COVERED = 1  # covering <= 1 mode of a multi-mode reference ...
SINGLE_MODE_MIN_EXPECTED = 2.0  # ... when an exact sampler would cover >= 2 on average
COLLAPSE_COVERAGE_RATIO = 0.5  # covered < 0.5 * expected_covered_ideal
DUPLICATE_COLLAPSE_FRACTION = 0.5  # >= half the rows repeat an earlier row: identical outputs
# partial_collapse
COVERAGE_SIGMAS = 3.0  # covered < expected - max(COVERAGE_MIN_MARGIN, 3 std) ...
COVERAGE_MIN_MARGIN = 0.5  # ... i.e. at least one mode more missing than chance explains
KL_MARGIN_NATS = 0.1  # kl > kl_expected_ideal + max(0.1 nats, 3 std): mode imbalance
KL_SIGMAS = 3.0
# warning only
LOW_QUALITY_FRACTION = 0.5  # high_quality_fraction below this adds a reason


def _collapse_reasons(stats: dict[str, Any]) -> list[str]:
    """Reasons for `collapsed`, one per rule that fires (see verdict for the keys)."""
    reasons = []
    covered, total, expected = stats["covered"], stats["support"], stats["expected_covered"]
    if stats["high_quality_count"] == 0:
        reasons.append(
            f"no high-quality sample: none of the {stats['n_samples']} samples lies within "
            "3 std of a mode centre"
        )
    if total >= 2 and covered <= SINGLE_MODE_MAX_COVERED and expected >= SINGLE_MODE_MIN_EXPECTED:
        reasons.append(
            f"covers {covered} of {total} modes (rule: <= {SINGLE_MODE_MAX_COVERED} mode when an "
            f"exact sampler of the same size covers {expected:.1f} >= {SINGLE_MODE_MIN_EXPECTED:g})"
        )
    if covered < COLLAPSE_COVERAGE_RATIO * expected:
        reasons.append(
            f"covers {covered} of {total} modes, fewer than {COLLAPSE_COVERAGE_RATIO:g} x the "
            f"{expected:.1f} an exact sampler of {stats['n_samples']} samples covers"
        )
    if stats["duplicate_fraction"] >= DUPLICATE_COLLAPSE_FRACTION:
        reasons.append(
            f"identical outputs: {stats['duplicate_fraction']:.1%} of rows repeat an earlier row "
            f"(rule: >= {DUPLICATE_COLLAPSE_FRACTION:.0%})"
        )
    return reasons


def _partial_reasons(stats: dict[str, Any]) -> list[str]:
    """Reasons for `partial_collapse`, one per rule that fires (see verdict for the keys)."""
    reasons = []
    expected, spread = stats["expected_covered"], stats["expected_covered_std"]
    floor = expected - max(COVERAGE_MIN_MARGIN, COVERAGE_SIGMAS * spread)
    if stats["covered"] < floor:
        reasons.append(
            f"covers {stats['covered']} of {stats['support']} modes; an exact sampler of the same "
            f"size covers {expected:.2f} +- {spread:.2f}, so more modes are missing than chance "
            f"explains (rule: covered < expected - max({COVERAGE_MIN_MARGIN:g}, "
            f"{COVERAGE_SIGMAS:g} std) = {floor:.2f})"
        )
    kl = stats["kl"]
    if kl is not None and stats["kl_expected"] is not None:
        limit = stats["kl_expected"] + max(KL_MARGIN_NATS, KL_SIGMAS * stats["kl_expected_std"])
        if math.isinf(kl):
            reasons.append(
                "mode imbalance: high-quality samples sit on modes of reference weight 0, "
                "so KL(generated || reference) is infinite"
            )
        elif kl > limit:
            reasons.append(
                f"mode imbalance: KL(generated || reference) = {kl:.3f} nats, above the "
                f"{stats['kl_expected']:.3f} an exact sampler of the same size scores (rule: kl > "
                f"expected + max({KL_MARGIN_NATS:g}, {KL_SIGMAS:g} std) = {limit:.3f})"
            )
    return reasons


def verdict(stats: dict[str, Any]) -> dict[str, Any]:
    """Apply the rules to the report's numbers; returns {"status": str, "reasons": [str]}.

    stats keys: n_samples, support (modes of positive weight), covered, expected_covered,
    expected_covered_std, kl (nats; None without high-quality samples; inf possible),
    kl_expected, kl_expected_std (None likewise), duplicate_fraction, high_quality_count,
    high_quality_fraction. status is "collapsed" if any collapse rule fires, else
    "partial_collapse" if any partial rule fires, else "healthy".
    """
    reasons = _collapse_reasons(stats)
    status = "collapsed"
    if not reasons:
        reasons = _partial_reasons(stats)
        status = "partial_collapse" if reasons else "healthy"
    if status == "healthy":
        reasons.append(
            f"covers {stats['covered']} of {stats['support']} modes (an exact sampler of the same "
            f"size covers {stats['expected_covered']:.2f} +- {stats['expected_covered_std']:.2f}) "
            f"with KL {stats['kl']:.3f} nats"
        )
    if stats["high_quality_fraction"] < LOW_QUALITY_FRACTION:
        reasons.append(
            f"low sample quality: only {stats['high_quality_fraction']:.1%} of samples lie within "
            f"3 std of a mode centre (warning below {LOW_QUALITY_FRACTION:.0%})"
        )
    return {"status": status, "reasons": reasons}
