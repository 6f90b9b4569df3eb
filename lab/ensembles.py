"""How an ensemble's samples follow from a seed: which member draws each sample, and with which
seed each member draws its share (docs/ensembles.md).

For seed s and members 0..K-1 with weights w_0..w_{K-1} (summing to 1, in card order), one
PCG64(s) stream (lab.noise.seeded_generator) gives, in this order:

1. the members' seeds: seed_k = (the k-th 64-bit output of the stream) >> 1, so each lies in
   0 .. MAX_SEED and does not depend on n;
2. the members of the samples: u_i = the i-th float64 uniform on [0, 1) that follows
   (Generator.random: the next 64-bit output >> 11, times 2^-53), and sample i's member is the
   first k whose cumulative weight w_0 + ... + w_k exceeds u_i (the last member when rounding
   leaves none): a seeded categorical draw per sample.

Member k then draws its n_k samples (the count of samples assigned to it) as it would for a
request of n_k samples and seed seed_k, and they fill its samples' places in order. The same
seed gives the same bits; the first m samples of a request of n >= m are those of a request of
m whenever every member's are (a gan's are). A member with no sample is not run.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.cards import check_member, read_card
from lab.diagnostics.members import Members
from lab.noise import categorical, seeded_generator
from lab.sampling import Draw, Progress, file_drawer


def member_stream(weights: Sequence[float], n: int, seed: int) -> tuple[list[int], np.ndarray]:
    """(the members' seeds [K], each sample's member int64 [n]) for `seed` (module docstring)."""
    rng = seeded_generator(seed)
    seeds = [int(bits) >> 1 for bits in rng.bit_generator.random_raw(len(weights))]
    return seeds, categorical(weights, rng.random(n))


def member_assignment(weights: Sequence[float], n: int, seed: int) -> np.ndarray:
    """Each of the n samples' member (an index into the weights), int64 [n]."""
    return member_stream(weights, n, seed)[1]


def member_counts(weights: Sequence[float], n: int, seed: int) -> list[int]:
    """How many of the n samples each member draws, [K] ints summing to n."""
    return np.bincount(member_assignment(weights, n, seed), minlength=len(weights)).tolist()


def ensemble_drawer(draws: Sequence[Draw], weights: Sequence[float]) -> Draw:
    """draw(n, seed) -> [n, ...] float32: the ensemble of members draws[k] (each a Draw, as
    lab.sampling makes them) with weights[k], by the module's rule. progress counts samples:
    each member's own progress is scaled to its share."""

    def draw(n: int, seed: int, progress: Progress | None = None) -> np.ndarray:
        seeds, members = member_stream(weights, n, seed)
        samples, done = None, 0
        if progress is not None:
            progress(0, n)
        for k, member_draw in enumerate(draws):
            rows = np.flatnonzero(members == k)
            if rows.size == 0:
                continue
            part = member_draw(rows.size, seeds[k], share(progress, done, rows.size, n))
            if samples is None:
                samples = np.empty((n, *part.shape[1:]), dtype=np.float32)
            samples[rows] = part
            done += rows.size
        return samples

    return draw


def share(progress: Progress | None, before: int, rows: int, total: int) -> Progress | None:
    """A member's progress(done, its total) reported as the ensemble's (before + its rows
    scaled to `rows`, total); None without progress."""
    if progress is None:
        return None

    def report(done: int, of: int) -> None:
        progress(before + (rows * done) // max(of, 1), total)

    return report


def ensemble_members(version: dict, n: int, seed: int) -> Members:
    """Which member of an ensemble card's `version` draws each of the n samples of `seed`, as
    the diagnostics' `ensemble` section reads it."""
    specs = version["members"]
    weights = tuple(spec["weight"] for spec in specs)
    return Members(
        tuple(spec["model"] for spec in specs),
        tuple(spec["version"] for spec in specs),
        weights,
        member_assignment(weights, n, seed),
    )


def file_ensemble_drawer(models_dir: Path, card: dict, version: dict) -> Draw:
    """draw(n, seed) of one version of the ensemble `card` from its members' files in
    models_dir (lab.sampling.file_drawer: what the service returns with its default settings),
    each member checked against the ensemble (lab.cards.check_member). For the trainer's
    diagnostics, which have no loaded repository. ValueError for a missing or incompatible
    member (FileNotFoundError for a missing file)."""
    draws = []
    for spec in version["members"]:
        folder = Path(models_dir) / spec["model"]
        member = read_card(folder)
        if member is None:
            raise ValueError(f"member {spec['model']!r} not in {models_dir}")
        check_member(card, member)
        numbers = [entry["version"] for entry in member["versions"]]
        if spec["version"] not in numbers:
            raise ValueError(f"member {spec['model']!r} has no version {spec['version']}")
        draws.append(file_drawer(folder, member, spec["version"]))
    return ensemble_drawer(draws, [spec["weight"] for spec in version["members"]])
