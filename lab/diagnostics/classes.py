"""A class-conditional model's batch diagnosed per class: the report's `classes` section
(docs/conditional.md).

Class k holds the reference modes lab.conditioning.class_modes gives it. Its samples (those
drawn for label k) are diagnosed against those modes alone, with the reference's weights
renormalised over them: a sample that lands on another class's mode is not a high-quality
sample of class k, so it lowers the class's high-quality share, and `on_class_fraction` says
what share of the class's high-quality samples (counted against every mode) sit on its own
modes. The verdict of each class is the mode rules' (as the collapse table's: no feature
metrics per class), with a warning when fewer than ON_CLASS_WARNING of its high-quality samples
are on its own modes.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lab.conditioning import LabelChoice, request_labels

from .statistics import ModeStats, finite_or_none, no_feature_stats
from .verdict import starved_modes, verdict


@dataclass(frozen=True, eq=False)  # eq by identity: an array field has no truth value
class Classes:
    """The class each sample of a batch was drawn for: labels int [N] in 0..count-1."""

    count: int
    labels: np.ndarray


def request_classes(card: dict, choice: LabelChoice, n: int, seed: int) -> Classes | None:
    """The classes of the n samples a request of `seed` with `choice` draws from a conditional
    card (lab.conditioning.request_labels); None for an unconditional card."""
    labels_of = request_labels(card, choice)
    if labels_of is None:
        return None
    return Classes(card["conditional"]["classes"], labels_of(n, seed))


# Below this on_class_fraction a class's reasons warn that the model does not follow the label
# (a warning like the verdict's low-quality one: the status stays the mode rules').
ON_CLASS_WARNING = 0.9
# The duplicate rules judge a class of at least this many rows: over fewer, a pair or two of
# chance neighbours is already 10%. Exact mixture draws at 100-110 rows a class (grid25, grid100
# with a class per mode; 300 classes in all) had at most 6% of rows with a near partner.
DUPLICATE_MIN_ROWS = 100
# (rows, modes) -> (the rows' statistics over every mode, their statistics over `modes` alone)
ClassStats = Callable[[np.ndarray, range], tuple[ModeStats, ModeStats | None]]
# rows -> the rows' duplicates (exact_fraction, near_fraction at the whole batch's threshold),
# or None where the report computed no feature metrics (the modes-only diagnosis)
ClassDuplicates = Callable[[np.ndarray], dict[str, float] | None]


def classes_section(
    classes: Classes,
    class_modes: list[range],
    stats_of: ClassStats,
    duplicates_of: ClassDuplicates = lambda rows: None,
) -> dict:
    """The `classes` section: `count`, `healthy` (classes whose verdict is healthy), and
    `per_class`, one object per class with samples (class_entry); a class with no sample in
    the batch is listed with n 0 and no numbers."""
    entries = []
    for k, modes in enumerate(class_modes):
        rows = np.flatnonzero(classes.labels == k)
        entry = class_entry(k, modes, rows, stats_of, duplicates_of) if rows.size else None
        entries.append(entry or empty_entry(k))
    healthy = sum(entry["verdict"] == "healthy" for entry in entries)
    return {"count": classes.count, "healthy": healthy, "per_class": entries}


def class_entry(
    k: int, modes: range, rows: np.ndarray, stats_of: ClassStats, duplicates_of: ClassDuplicates
) -> dict[str, Any]:
    """One class's object: n, its modes (total, covered, missing, starved as reference mode
    ids), high_quality_fraction, on_class_fraction, kl (and the every-sample count's covered
    and kl for classifier references), its `duplicates` when the report has feature metrics,
    verdict and reasons (the mode rules, and, for a class of DUPLICATE_MIN_ROWS rows or more,
    the duplicate rules on its own rows: a class whose samples sit on one point collapsed even
    where it holds a single mode; a healthy single-mode class of fewer rows is inconclusive,
    its spread unjudged)."""
    everywhere, own = stats_of(rows, modes)
    hits = int(everywhere.histogram[modes.start : modes.stop].sum())
    on_class = hits / everywhere.high_quality_count if everywhere.high_quality_count else None
    if own is None:  # the class's modes all have weight 0 in the reference
        return {**empty_entry(k), "n": int(rows.size), "on_class_fraction": on_class}
    repeats = duplicates_of(rows) if rows.size >= 2 else None
    features = no_feature_stats(own.n_samples)
    if repeats is not None and rows.size >= DUPLICATE_MIN_ROWS:
        features = replace(
            features,
            duplicate_fraction=repeats["exact_fraction"],
            near_duplicate_fraction=repeats["near_fraction"],
        )
    judged = verdict(own, features)
    status, reasons = judged.status, list(judged.reasons)
    if repeats is not None and own.total == 1 and rows.size < DUPLICATE_MIN_ROWS:
        status = "inconclusive" if status == "healthy" else status
        reasons.append(
            f"one mode and {rows.size} rows, fewer than the {DUPLICATE_MIN_ROWS} the duplicate "
            "rules need: whether its samples spread over the mode is not judged"
        )
    if on_class is not None and on_class < ON_CLASS_WARNING:
        reasons.append(
            f"warning: only {on_class:.1%} of its high-quality samples lie on its own modes "
            "(the rest on other classes' modes): the model does not follow this label"
        )
    entry = {
        "class": k,
        "n": int(rows.size),
        "modes": {
            "total": own.total,
            "covered": own.covered,
            "missing": [modes[i] for i in own.missing],
            "starved": [modes[s.mode] for s in starved_modes(own)],
        },
        "high_quality_fraction": own.high_quality_fraction,
        "on_class_fraction": on_class,
        "kl": finite_or_none(own.kl),
        **({} if repeats is None else {"duplicates": repeats}),
        "verdict": status,
        "reasons": reasons,
    }
    if own.all_samples is not None:
        every = own.all_samples
        entry["all_samples"] = {"covered": every.covered, "kl": finite_or_none(every.kl)}
    return entry


def empty_entry(k: int) -> dict[str, Any]:
    """A class without samples (or without modes of positive weight): nothing to judge."""
    return {"class": k, "n": 0, "modes": None, "high_quality_fraction": None, "verdict": None}
