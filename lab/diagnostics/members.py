"""Why an ensemble covers the modes it covers: each member's share of the batch diagnosed on its
own (which member put high-quality samples in which mode), and the sentences that say it.

The report's `ensemble` section (docs/ensembles.md). A member's histogram counts the same
high-quality samples, by the same rule, as the batch's: summed over the members it is the
batch's histogram.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .statistics import ModeStats
from .verdict import starved_modes

MAX_LISTED = 12  # modes named in one sentence of `why`; beyond, "... and N more"


@dataclass(frozen=True, eq=False)  # eq by identity: an array field has no truth value
class Members:
    """Which member drew each sample of a batch.

    names: each member's model name; versions: the version drawn; weights: its mixing weight
    (all in card order); assignment: int [N], sample i's member (lab.ensembles).
    """

    names: tuple[str, ...]
    versions: tuple[int, ...]
    weights: tuple[float, ...]
    assignment: np.ndarray


def members_section(
    members: Members, modes_of: Callable[[np.ndarray], ModeStats | None], total: int
) -> dict[str, Any]:
    """The report's `ensemble` section: `members` (each member's model, version, weight, n,
    covered, covered_modes, starved_modes (verdict.starved_modes of its own samples),
    histogram, high_quality_fraction), `covered_by` (for each of the `total`
    modes, the members with a high-quality sample there) and `why` (sentences).
    modes_of(rows) gives the mode statistics of the batch's rows (int indices), never called
    with none."""
    entries, histograms = [], []
    for k in range(len(members.names)):
        rows = np.flatnonzero(members.assignment == k)
        stats = modes_of(rows) if rows.size else None
        histogram = np.zeros(total, np.int64) if stats is None else stats.histogram
        histograms.append(histogram)
        entries.append(member_entry(members, k, rows.size, histogram, stats))
    matrix = np.stack(histograms)
    covered_by = [np.flatnonzero(matrix[:, mode]).tolist() for mode in range(total)]
    starved = [entry["starved_modes"] for entry in entries]
    return {"members": entries, "covered_by": covered_by, "why": why(members, matrix, starved)}


def member_entry(
    members: Members, k: int, n: int, histogram: np.ndarray, stats: ModeStats | None
) -> dict[str, Any]:
    """One member's object of the `ensemble` section."""
    covered = np.flatnonzero(histogram).tolist()
    starved = [] if stats is None else [entry.mode for entry in starved_modes(stats)]
    return {
        "model": members.names[k],
        "version": members.versions[k],
        "weight": members.weights[k],
        "n": n,
        "covered": len(covered),
        "covered_modes": covered,
        "starved_modes": starved,
        "histogram": histogram.tolist(),
        "high_quality_fraction": None if stats is None else stats.high_quality_fraction,
    }


def why(members: Members, matrix: np.ndarray, starved: list[list[int]]) -> list[str]:
    """Sentences: how many modes each member covers alone and together; the modes that only
    one member covers, by member; the modes covered by several; the modes none covers; each
    member's starved modes. matrix: int [K members, modes], high-quality samples per member
    and mode; starved: each member's starved modes."""
    hit = matrix > 0
    together = int(hit.any(axis=0).sum())
    alone = ", ".join(f"{name} {int(hit[k].sum())}" for k, name in enumerate(members.names))
    sentences = [
        f"together the members cover {together} of {matrix.shape[1]} modes; alone: {alone}"
    ]
    sole = hit.sum(axis=0) == 1
    for k, name in enumerate(members.names):
        only = np.flatnonzero(sole & hit[k]).tolist()
        if only:
            sentences.append(f"only {name} puts high-quality samples in {listed(only)}")
    shared = np.flatnonzero(hit.sum(axis=0) > 1).tolist()
    if shared:
        sentences.append(f"several members cover {listed(shared)}")
    none = np.flatnonzero(~hit.any(axis=0)).tolist()
    if none:
        sentences.append(f"no member puts a high-quality sample in {listed(none)}")
    for name, modes in zip(members.names, starved, strict=True):
        if modes:
            sentences.append(f"{name} starves {listed(modes)}: far fewer samples than chance")
    return sentences


def listed(modes: list[int]) -> str:
    """'mode 3' or 'modes 0, 2, 5' (at most MAX_LISTED, then 'and N more')."""
    shown = ", ".join(str(mode) for mode in modes[:MAX_LISTED])
    more = f" and {len(modes) - MAX_LISTED} more" if len(modes) > MAX_LISTED else ""
    return f"mode{'s' if len(modes) > 1 else ''} {shown}{more}"
