"""When did the run collapse? The rule, applied to the run's evaluations, and RUN_DIR/monitor.json.

Every evaluation records the verdict of the diagnostics' mode rules (lab/diagnostics/verdict.py:
healthy, inconclusive, partial_collapse or collapsed) beside the modes covered. A GAN that has
not learned yet is "collapsed" too (no high-quality sample), so the verdict alone cannot date a
collapse; what dates it is a loss of modes the run once covered, more than its high-quality
samples explain:

    collapse began at the first evaluation judged partial_collapse or collapsed whose modes
    covered fall below baseline - max(0.5, 3 std), where baseline = min(the most modes covered
    at any earlier evaluation, modes_expected) and modes_expected, std are the mean and spread
    of the modes an exact sampler with this evaluation's number of high-quality samples covers
    (the verdict's coverage rule, coverage_floor, with that baseline in place of its mean).

The baseline's second term keeps a drop in quality from passing for a collapse: a run whose
high-quality samples vanish (an exact sampler with none covers 0 modes) has lost quality, not
modes. With 2,500 samples on ring8 or grid25 the std is ~0, so losing one mode counts. The
best coverage is the evaluation with the most modes covered (ties: the lower KL, then the
earlier step). monitor.json is rewritten after every evaluation and cut back to the step a
run resumes from, so it always describes the evaluations in metrics.jsonl.
"""

import json
import math
import os
from pathlib import Path
from typing import Any

from lab.diagnostics.verdict import coverage_floor

MONITOR_FILE = "monitor.json"
RULE = (
    "collapse began at the first evaluation judged partial_collapse or collapsed whose "
    "modes_covered < min(best_before, modes_expected) - max(0.5, 3 * modes_expected_std), "
    "best_before being the most modes covered at an earlier evaluation (trainer/collapse.py)"
)
COLLAPSE_VERDICTS = ("partial_collapse", "collapsed")
ENTRY_KEYS = (  # what monitor.json keeps of an evaluation record
    "step",
    "verdict",
    "verdict_reasons",
    "modes_covered",
    "modes_total",
    "modes_expected",
    "modes_expected_std",
    "high_quality_fraction",
    "kl",
)


def is_evaluation(record: dict[str, Any]) -> bool:
    """True for a metrics record that holds an evaluation (its verdict)."""
    return "verdict" in record


def entry(record: dict[str, Any]) -> dict[str, Any]:
    """monitor.json's copy of an evaluation record: ENTRY_KEYS (missing ones as None)."""
    return {key: record.get(key) for key in ENTRY_KEYS}


def lost_coverage(evaluation: dict[str, Any], best_before: int) -> bool:
    """The rule: a collapse verdict, and modes covered below min(best_before, modes_expected)
    by more than chance explains."""
    if evaluation.get("verdict") not in COLLAPSE_VERDICTS:
        return False
    expected = evaluation.get("modes_expected")
    baseline = best_before if expected is None else min(best_before, expected)
    spread = evaluation.get("modes_expected_std") or 0.0
    return evaluation["modes_covered"] < coverage_floor(baseline, spread)


def coverage_rank(evaluation: dict[str, Any]) -> tuple[float, float]:
    """Sort key of the best coverage: more modes, then lower KL (None: worst)."""
    kl = evaluation.get("kl")
    return (evaluation["modes_covered"], -kl if kl is not None else -math.inf)


def summarise(evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """collapse_step and best_step (None when none) of evaluations in step order."""
    collapse, best, most = None, None, None
    for evaluation in evaluations:
        if collapse is None and most is not None and lost_coverage(evaluation, most):
            collapse = evaluation
        if best is None or coverage_rank(evaluation) > coverage_rank(best):
            best = evaluation
        most = max(most or 0, evaluation["modes_covered"])
    return {
        "rule": RULE,
        "collapse_step": collapse and collapse["step"],
        "collapse": collapse,
        "best_step": best and best["step"],
        "best": best,
    }


def read_monitor(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/monitor.json's contents ({} for a run that has none)."""
    path = Path(run_dir) / MONITOR_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def kept_evaluations(run_dir: Path, step: int) -> list[dict[str, Any]]:
    """monitor.json's evaluations up to `step` (the step a run resumes from)."""
    evaluations = read_monitor(run_dir).get("evaluations", [])
    return [evaluation for evaluation in evaluations if evaluation["step"] <= step]


def write_monitor(run_dir: Path, document: dict[str, Any]) -> None:
    """RUN_DIR/monitor.json, replaced atomically (NaN and inf are never written: kl is None)."""
    path = Path(run_dir) / MONITOR_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    os.replace(temporary, path)


def mode_coverage(record: dict[str, Any]) -> float | None:
    """modes_covered / modes_expected (the modes an exact sampler with the same high-quality
    samples covers): 1 is an exact sampler's coverage; None without an expectation."""
    expected = record.get("modes_expected")
    if not expected or record.get("modes_covered") is None:
        return None
    return record["modes_covered"] / expected
