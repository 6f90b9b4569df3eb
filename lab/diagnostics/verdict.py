"""The verdict rules: healthy | partial_collapse | collapsed | inconclusive, with the reasons.

Every threshold is a named constant here and is documented in docs/diagnostics.md. Rules that
depend on coverage or KL compare with what an *exact* sampler scores with the same number of
high-quality samples, so a small batch is never blamed for modes it could not have seen, and
unreadable samples count as low quality, not as missing modes. A batch on which no rule fires
is `healthy` only when the rules could have told: when it is too small for them to notice even
half of the modes missing, it is `inconclusive`, with the size that would tell.
"""

import math
from dataclasses import dataclass

import numpy as np

from .mixture import expected_coverage
from .special import log_gamma
from .statistics import FeatureStats, ModeStats

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
# a starved mode: fewer than a quarter of what an exact sampler with as many high-quality
# samples puts there, and so few that an exact sampler gets them with chance < alpha / K+
# (Bonferroni over the modes); one stray sample no longer makes a mode count as produced
STARVED_RATIO = 0.25
STARVED_ALPHA = 0.01
_TAIL_TERMS = 64  # binomial terms summed below a starved count (each <= 1/4 of the next)
# feature-space rules (any reference with features)
FEATURE_COLLAPSE_COVERAGE_RATIO = 0.5  # coverage < 0.5 x what identical distributions score
COVERAGE_DEFICIT = 0.05  # coverage < expected - max(0.05, 4 se): mode dropping (Naeem 2020)
COVERAGE_SE_MULTIPLE = 4.0
NDB_ALPHA = 0.05  # the z-test level of ndb.py: a perfect sampler flags ~alpha K bins
NDB_SIGMAS = 3.0  # NDB > alpha K + 3 sqrt(K alpha (1 - alpha)): more bins than chance
NEAR_DUPLICATE_COLLAPSE_FRACTION = 0.5  # >= half the rows have a near-identical partner
NEAR_DUPLICATE_PARTIAL_FRACTION = 0.1  # > 10%: samples pile up (exact draws: ~1% on ring8)
VENDI_RATIO = 0.5  # Vendi score below half the reference's at the same size: low diversity
LOW_PRECISION = 0.5  # warning: fewer than half the samples lie on the reference manifold
# warning only
LOW_QUALITY_FRACTION = 0.5  # high_quality_fraction below this adds a reason
# inconclusive: the yardstick collapse the coverage rule must be able to see at this size, a
# sampler that drops the lighter half of the modes (its mass spread over the rest)
HALF_COLLAPSE_DROPPED = 0.5
MAX_CONCLUSIVE_SEARCH = 10**8  # high-quality samples: beyond this, no size is named


@dataclass(frozen=True)
class Verdict:
    """status: "healthy" | "partial_collapse" | "collapsed" | "inconclusive"; reasons: one
    short sentence per rule that fired (a healthy verdict: one that states the coverage and KL;
    an inconclusive one: why the batch is too small and what size would tell), then
    warnings."""

    status: str
    reasons: tuple[str, ...]


def _collapse_reasons(modes: ModeStats | None, features: FeatureStats) -> list[str]:
    """Reasons for `collapsed`, one per rule that fires."""
    reasons = []
    if features.duplicate_fraction >= DUPLICATE_COLLAPSE_FRACTION:
        reasons.append(
            f"identical outputs: {features.duplicate_fraction:.1%} of rows repeat an earlier row "
            f"(rule: >= {DUPLICATE_COLLAPSE_FRACTION:.0%})"
        )
    near = features.near_duplicate_fraction
    if near >= NEAR_DUPLICATE_COLLAPSE_FRACTION:
        reasons.append(
            f"near-identical outputs: {near:.1%} of rows have a near-duplicate partner "
            f"(rule: >= {NEAR_DUPLICATE_COLLAPSE_FRACTION:.0%})"
        )
    if modes is not None:  # a reference with modes: the papers' protocol decides collapse
        return reasons + _mode_collapse_reasons(modes)
    return reasons + _feature_collapse_reasons(features)


def _mode_collapse_reasons(modes: ModeStats) -> list[str]:
    reasons = []
    covered, total, expected = modes.covered, modes.support, modes.expected_covered_same_quality
    if modes.high_quality_count == 0:
        reasons.append(
            f"no high-quality sample: none of the {modes.n_samples} samples "
            f"{modes.high_quality_rule}"
        )
    if total >= 2 and covered <= SINGLE_MODE_MAX_COVERED and expected >= SINGLE_MODE_MIN_EXPECTED:
        reasons.append(
            f"covers {covered} of {total} modes (rule: <= {SINGLE_MODE_MAX_COVERED} mode when an "
            f"exact sampler {same_quality(modes)} covers {expected:.1f} >= "
            f"{SINGLE_MODE_MIN_EXPECTED:g})"
        )
    if covered < COLLAPSE_COVERAGE_RATIO * expected:
        reasons.append(
            f"covers {covered} of {total} modes, fewer than {COLLAPSE_COVERAGE_RATIO:g} x the "
            f"{expected:.1f} an exact sampler {same_quality(modes)} covers"
        )
    return reasons


def same_quality(modes: ModeStats) -> str:
    """ "with the same N high-quality samples" (or "of the same size" when all are)."""
    if modes.high_quality_count == modes.n_samples:
        return "of the same size"
    return f"with the same {modes.high_quality_count} high-quality samples"


def _feature_collapse_reasons(features: FeatureStats) -> list[str]:
    coverage, expected = features.coverage, features.coverage_expected_identical
    if coverage is None or coverage >= FEATURE_COLLAPSE_COVERAGE_RATIO * expected:
        return []
    return [
        f"coverage {coverage:.3f} is below {FEATURE_COLLAPSE_COVERAGE_RATIO:g} x the "
        f"{expected:.3f} that two identical distributions of these sizes score"
    ]


def _diversity_reasons(modes: ModeStats | None, features: FeatureStats) -> list[str]:
    """Partial-collapse reasons from near duplicates and (without modes) the Vendi score."""
    reasons = []
    near = features.near_duplicate_fraction
    if NEAR_DUPLICATE_PARTIAL_FRACTION < near < NEAR_DUPLICATE_COLLAPSE_FRACTION:
        reasons.append(
            f"samples pile up: {near:.1%} of rows have a near-duplicate partner "
            f"(rule: > {NEAR_DUPLICATE_PARTIAL_FRACTION:.0%})"
        )
    vendi, reference = features.vendi, features.vendi_reference
    if modes is None and vendi is not None and reference:
        if vendi < VENDI_RATIO * reference:
            reasons.append(
                f"low diversity: Vendi score {vendi:.2f} is below {VENDI_RATIO:g} x the "
                f"reference's {reference:.2f} at the same size"
            )
    return reasons


def ndb_limit(bins: int) -> float:
    """The most differing bins of K that chance explains: alpha K + NDB_SIGMAS sd of the
    binomial count of false alarms (11.5 of 100 bins)."""
    return NDB_ALPHA * bins + NDB_SIGMAS * math.sqrt(bins * NDB_ALPHA * (1 - NDB_ALPHA))


def _feature_partial_reasons(features: FeatureStats) -> list[str]:
    reasons = []
    coverage, expected = features.coverage, features.coverage_expected_identical
    if coverage is not None:
        se = math.sqrt(max(expected * (1 - expected), 1e-12) / features.n_reference)
        floor = expected - max(COVERAGE_DEFICIT, COVERAGE_SE_MULTIPLE * se)
        if coverage < floor:
            reasons.append(
                f"coverage {coverage:.3f} below the {expected:.3f} of identical distributions "
                f"(rule: coverage < expected - max({COVERAGE_DEFICIT:g}, "
                f"{COVERAGE_SE_MULTIPLE:g} se) = {floor:.3f}): parts of the reference are missed"
            )
    bins, ndb = features.ndb_bins, features.ndb
    if bins:
        limit = ndb_limit(bins)
        if ndb > limit:
            reasons.append(
                f"{ndb} of {bins} K-means bins differ significantly from the reference "
                f"(rule: NDB > {NDB_ALPHA:g} K + {NDB_SIGMAS:g} sd = {limit:.1f})"
            )
    return reasons


def _partial_reasons(modes: ModeStats | None, features: FeatureStats) -> list[str]:
    """Reasons for `partial_collapse`, one per rule that fires."""
    if modes is None:
        return _feature_partial_reasons(features) + _diversity_reasons(modes, features)
    # With modes, the feature rules add evidence only for sharp samples: blurred samples fall
    # outside the reference's k-NN balls whatever their diversity (a quality, not a collapse).
    sharp = modes.high_quality_fraction >= LOW_QUALITY_FRACTION
    reasons = (_feature_partial_reasons(features) if sharp else []) + _diversity_reasons(
        modes, features
    )
    expected, spread = modes.expected_covered_same_quality, modes.expected_covered_same_quality_std
    floor = coverage_floor(expected, spread)
    if modes.covered < floor:
        reasons.append(
            f"covers {modes.covered} of {modes.support} modes; an exact sampler "
            f"{same_quality(modes)} covers {expected:.2f} +- {spread:.2f}, so more modes are "
            "missing than chance "
            f"explains (rule: covered < expected - max({COVERAGE_MIN_MARGIN:g}, "
            f"{COVERAGE_SIGMAS:g} std) = {floor:.2f})"
        )
    return reasons + _starved_reasons(modes) + _imbalance_reasons(modes)


@dataclass(frozen=True)
class Starved:
    """A covered mode with far fewer high-quality samples than chance allows (see
    starved_modes): its count, what an exact sampler with as many puts there, and the
    chance an exact sampler gets so few."""

    mode: int
    count: int
    expected: float
    tail: float


def starved_modes(modes: ModeStats) -> list[Starved]:
    """The covered modes k with h_k < STARVED_RATIO x HQ s_k and P(Bin(HQ, s_k) <= h_k) <
    STARVED_ALPHA / K+ (s_k: the exact sampler's share of high-quality draws on mode k, HQ the
    batch's high-quality count), ascending. A missing mode (h_k = 0) is not starved: the
    coverage rule counts it. With count < HQ s_k / 4 the pmf below h_k shrinks by a factor
    <= 1/4 a term, so _TAIL_TERMS terms give the tail to double precision."""
    counts, shares, n = modes.histogram, modes.hit_shares, modes.high_quality_count
    expected = n * shares
    candidates = np.flatnonzero((counts > 0) & (counts < STARVED_RATIO * expected))
    if candidates.size == 0:
        return []
    tails = binomial_lower_tail(counts[candidates], n, shares[candidates])
    limit = STARVED_ALPHA / max(modes.support, 1)
    return [
        Starved(int(k), int(counts[k]), float(expected[k]), float(tail))
        for k, tail in zip(candidates, tails, strict=True)
        if tail < limit
    ]


def binomial_lower_tail(counts: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """P(X <= c) for X ~ Binomial(n, p), elementwise over counts int [M] and p float [M] in
    (0, 1), for c < n p / 4 only (then pmf(j - 1) / pmf(j) = j (1 - p) / ((n - j + 1) p)
    <= 1/4): pmf(c) from log-gamma, then _TAIL_TERMS terms down by that ratio."""
    c = counts.astype(np.float64)
    log_pmf = (
        log_gamma(n + 1.0)
        - log_gamma(c + 1.0)
        - log_gamma(n - c + 1.0)
        + c * np.log(p)
        + (n - c) * np.log1p(-p)
    )
    term, total = np.exp(log_pmf), np.exp(log_pmf)
    for step in range(_TAIL_TERMS):
        j = c - step  # the term for j - 1 from the one for j
        term = np.where(j > 0, term * j * (1.0 - p) / ((n - j + 1.0) * p), 0.0)
        total = total + term
    return total


def _starved_reasons(modes: ModeStats) -> list[str]:
    """The starved-mode reason: covered modes with far fewer samples than chance allows."""
    starved = starved_modes(modes)
    if not starved:
        return []
    shown = ", ".join(
        f"{s.mode} ({s.count} vs {s.expected:.1f}, p = {s.tail:.1g})" for s in starved[:5]
    )
    more = f" and {len(starved) - 5} more" if len(starved) > 5 else ""
    return [
        f"starved modes: {shown}{more}: high-quality samples vs what an exact sampler "
        f"{same_quality(modes)} puts there (rule: fewer than {STARVED_RATIO:g} x expected, "
        f"with chance p < {STARVED_ALPHA:g} / {modes.support} modes)"
    ]


def coverage_floor(expected: float, spread: float) -> float:
    """The partial-collapse coverage rule's floor: expected - max(margin, 3 std)."""
    return expected - max(COVERAGE_MIN_MARGIN, COVERAGE_SIGMAS * spread)


def _imbalance_reasons(modes: ModeStats) -> list[str]:
    """The mode-imbalance reason: kl above what an exact sampler of the same size scores."""
    kl, expected = modes.kl, modes.kl_expected_ideal
    if kl is None or expected is None:
        return []
    limit = expected + max(KL_MARGIN_NATS, KL_SIGMAS * modes.kl_expected_ideal_std)
    if math.isinf(kl):
        return [
            "mode imbalance: high-quality samples sit on modes of reference weight 0, "
            "so KL(generated || reference) is infinite"
        ]
    if kl > limit:
        return [
            f"mode imbalance: KL(generated || reference) = {kl:.3f} nats, above the "
            f"{expected:.3f} an exact sampler of the same size scores (rule: kl > "
            f"expected + max({KL_MARGIN_NATS:g}, {KL_SIGMAS:g} std) = {limit:.3f})"
        ]
    return []


def _healthy_reason(modes: ModeStats | None, features: FeatureStats) -> str:
    parts = []
    if modes is not None:
        parts.append(
            f"covers {modes.covered} of {modes.support} modes (an exact sampler "
            f"{same_quality(modes)} covers {modes.expected_covered_same_quality:.2f} +- "
            f"{modes.expected_covered_same_quality_std:.2f}) with KL {modes.kl:.3f} nats"
        )
    if features.coverage is not None:
        parts.append(
            f"coverage {features.coverage:.3f} (identical distributions: "
            f"{features.coverage_expected_identical:.3f})"
        )
    if features.ndb_bins:
        parts.append(f"{features.ndb} of {features.ndb_bins} bins differ (NDB)")
    return "; ".join(parts) or "no rule fired (too few samples for most metrics)"


def _warnings(modes: ModeStats | None, features: FeatureStats) -> list[str]:
    """Low sample quality: reasons that never change the status."""
    precision = features.precision
    if modes is None and precision is not None and precision < LOW_PRECISION:
        return [
            f"low sample quality: precision {precision:.3f} (fewer than {LOW_PRECISION:.0%} "
            "of samples lie within the reference's k-NN balls; warning only)"
        ]
    if modes is not None and modes.high_quality_fraction < LOW_QUALITY_FRACTION:
        measured = (("coverage", features.coverage is not None), ("NDB", bool(features.ndb_bins)))
        unjudged = [name for name, present in measured if present]  # the feature rules skipped
        skipped = f"; {' and '.join(unjudged)} not judged below it" if unjudged else ""
        return [
            f"low sample quality: only {modes.high_quality_fraction:.1%} of samples "
            f"{modes.high_quality_rule} (warning below {LOW_QUALITY_FRACTION:.0%}{skipped})"
        ]
    return []


def half_collapsed_coverage(shares: np.ndarray, n_high_quality: int) -> float:
    """Modes a sampler covers with n_high_quality draws when it drops the lighter half of the
    modes (floor(K+/2) of smallest share; their mass spread over the rest in proportion).
    shares: float [K], an exact sampler's mode distribution of high-quality draws."""
    positive = np.sort(shares[shares > 0])[::-1]
    kept = positive[: len(positive) - int(HALF_COLLAPSE_DROPPED * len(positive))]
    return expected_coverage(kept / kept.sum(), n_high_quality)[0]


def can_tell(shares: np.ndarray, n_high_quality: int) -> bool:
    """Whether the partial-collapse coverage rule notices a half collapse (on average) with
    n_high_quality samples: the half-collapsed sampler's mean coverage is below the floor."""
    if np.count_nonzero(shares) < 2:
        return True  # one mode: no coverage to lose
    expected, spread = expected_coverage(shares, n_high_quality)
    return half_collapsed_coverage(shares, n_high_quality) < coverage_floor(expected, spread)


def conclusive_size(shares: np.ndarray, n_high_quality: int) -> int | None:
    """The smallest high-quality count >= n_high_quality at which can_tell holds (doubling,
    then bisection), None beyond MAX_CONCLUSIVE_SEARCH."""
    low, high = n_high_quality, max(2 * n_high_quality, 2)
    while not can_tell(shares, high):
        if high > MAX_CONCLUSIVE_SEARCH:
            return None
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if can_tell(shares, middle) else (middle, high)
    return high


def _inconclusive_reason(modes: ModeStats | None, features: FeatureStats) -> str | None:
    """Why no rule could fire at this size, or None when the rules could have told."""
    if modes is None:
        if features.coverage is not None or features.ndb_bins or features.n_reference == 0:
            return None  # without a reference only the duplicates rules exist; they ran
        return (
            f"too few samples to tell: {features.n_samples} is too small for the k-NN and NDB "
            "metrics (see features.skipped); send more samples"
        )
    n_hq = modes.high_quality_count
    if can_tell(modes.hit_shares, n_hq):
        return None
    needed = conclusive_size(modes.hit_shares, n_hq)
    size = f"at least {needed} high-quality samples" if needed else "far more samples"
    if needed and n_hq < modes.n_samples:
        size += f" (about {math.ceil(needed / max(modes.high_quality_fraction, 1e-9))} samples "
        size += f"at this batch's {modes.high_quality_fraction:.1%} high quality)"
    half = half_collapsed_coverage(modes.hit_shares, n_hq)
    return (
        f"too few samples to tell: with {n_hq} high-quality samples an exact sampler covers "
        f"{modes.expected_covered_same_quality:.2f} +- "
        f"{modes.expected_covered_same_quality_std:.2f} of {modes.support} modes and one that "
        f"drops half of them covers {half:.2f}, so the rules cannot tell them apart; "
        f"send {size}"
    )


def verdict(modes: ModeStats | None, features: FeatureStats) -> Verdict:
    """Apply the rules to a batch's statistics (modes: None for a reference without modes).

    status is "collapsed" if any collapse rule fires, else "partial_collapse" if any partial
    rule fires, else "inconclusive" when the batch is too small for the rules to have fired
    (see can_tell), else "healthy"; the low-quality warnings come last and change nothing.
    """
    reasons = _collapse_reasons(modes, features)
    status = "collapsed"
    if not reasons:
        reasons = _partial_reasons(modes, features)
        status = "partial_collapse" if reasons else "healthy"
    if status == "healthy":
        why = _inconclusive_reason(modes, features)
        status = "healthy" if why is None else "inconclusive"
        reasons.append(why or _healthy_reason(modes, features))
    return Verdict(status, tuple(reasons + _warnings(modes, features)))
