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
from dataclasses import dataclass
from typing import Any

import numpy as np

from .statistics import ModeStats, finite_or_none, no_feature_stats
from .verdict import starved_modes, verdict


@dataclass(frozen=True, eq=False)  # eq by identity: an array field has no truth value
class Classes:
    """The class each sample of a batch was drawn for: labels int [N] in 0..count-1."""

    count: int
    labels: np.ndarray


# Below this on_class_fraction a class's reasons warn that the model does not follow the label
# (a warning like the verdict's low-quality one: the status stays the mode rules').
ON_CLASS_WARNING = 0.9
# (rows, modes) -> (the rows' statistics over every mode, their statistics over `modes` alone)
ClassStats = Callable[[np.ndarray, range], tuple[ModeStats, ModeStats | None]]


def classes_section(classes: Classes, class_modes: list[range], stats_of: ClassStats) -> dict:
    """The `classes` section: `count`, `healthy` (classes whose verdict is healthy), and
    `per_class`, one object per class with samples (class_entry); a class with no sample in
    the batch is listed with n 0 and no numbers."""
    entries = []
    for k, modes in enumerate(class_modes):
        rows = np.flatnonzero(classes.labels == k)
        entries.append(class_entry(k, modes, rows, stats_of) if rows.size else empty_entry(k))
    healthy = sum(entry["verdict"] == "healthy" for entry in entries)
    return {"count": classes.count, "healthy": healthy, "per_class": entries}


def class_entry(k: int, modes: range, rows: np.ndarray, stats_of: ClassStats) -> dict[str, Any]:
    """One class's object: n, its modes (total, covered, missing, starved as reference mode
    ids), high_quality_fraction, on_class_fraction, kl (and the every-sample count's covered
    and kl for classifier references), verdict and reasons."""
    everywhere, own = stats_of(rows, modes)
    hits = int(everywhere.histogram[modes.start : modes.stop].sum())
    on_class = hits / everywhere.high_quality_count if everywhere.high_quality_count else None
    if own is None:  # the class's modes all have weight 0 in the reference
        return {**empty_entry(k), "n": int(rows.size), "on_class_fraction": on_class}
    judged = verdict(own, no_feature_stats(own.n_samples))
    reasons = list(judged.reasons)
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
        "verdict": judged.status,
        "reasons": reasons,
    }
    if own.all_samples is not None:
        every = own.all_samples
        entry["all_samples"] = {"covered": every.covered, "kl": finite_or_none(every.kl)}
    return entry


def empty_entry(k: int) -> dict[str, Any]:
    """A class without samples (or without modes of positive weight): nothing to judge."""
    return {"class": k, "n": 0, "modes": None, "high_quality_fraction": None, "verdict": None}
