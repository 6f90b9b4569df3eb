"""The report's `ensemble` section: which member put high-quality samples in which mode."""

import json

import numpy as np

from lab.diagnostics import diagnose
from lab.diagnostics.members import Members


def members_of(parts: list[np.ndarray], names: tuple[str, ...]) -> tuple[np.ndarray, Members]:
    """The batch of the members' parts interleaved by a fixed permutation, and its Members."""
    batch = np.concatenate(parts)
    assignment = np.concatenate([np.full(len(part), k) for k, part in enumerate(parts)])
    order = np.random.default_rng(0).permutation(len(batch))
    weights = tuple(len(part) / len(batch) for part in parts)
    versions = (1,) * len(parts)
    return batch[order], Members(names, versions, weights, assignment[order])


def test_member_histograms_say_which_member_covers_which_mode(references, draw):
    ring8 = references["ring8"]
    parts = [draw(ring8, 300, [0, 1], seed=1), draw(ring8, 500, [1, 2, 3], seed=2)]
    batch, members = members_of(parts, ("left", "right"))
    report = diagnose(batch, ring8, "ring8", members=members)
    section = report["ensemble"]
    left, right = section["members"]
    assert (left["n"], right["n"]) == (300, 500)
    assert left["covered_modes"] == [0, 1] and right["covered_modes"] == [1, 2, 3]
    assert left["starved_modes"] == right["starved_modes"] == []
    total = np.add(left["histogram"], right["histogram"])
    assert total.tolist() == report["modes"]["histogram"]  # the same samples, split by member
    assert section["covered_by"] == [[0], [0, 1], [1], [1], [], [], [], []]
    assert section["why"] == [
        "together the members cover 4 of 8 modes; alone: left 2, right 3",
        "only left puts high-quality samples in mode 0",
        "only right puts high-quality samples in modes 2, 3",
        "several members cover mode 1",
        "no member puts a high-quality sample in modes 4, 5, 6, 7",
    ]
    json.dumps(report, allow_nan=False)


def test_a_member_s_starved_modes_are_its_own(references, draw):
    """A member with 400 samples on mode 2 and 3 on mode 7 starves mode 7 (its own exact
    sampler would put about 200 there), however the other member covers it."""
    ring8 = references["ring8"]
    skewed = np.concatenate([draw(ring8, 400, [2], seed=5), draw(ring8, 3, [7], seed=6)])
    parts = [skewed, draw(ring8, 400, [7], seed=7)]
    batch, members = members_of(parts, ("skewed", "even"))
    section = diagnose(batch, ring8, "ring8", members=members)["ensemble"]
    assert section["members"][0]["starved_modes"] == [7]
    assert section["members"][1]["starved_modes"] == []
    assert section["why"][-1] == "skewed starves mode 7: far fewer samples than chance"


def test_a_member_without_samples_has_an_empty_histogram(references, draw):
    ring8 = references["ring8"]
    batch = draw(ring8, 400, [5], seed=3)
    members = Members(("drawn", "idle"), (1, 2), (0.99, 0.01), np.zeros(400, np.int64))
    section = diagnose(batch, ring8, "ring8", members=members)["ensemble"]
    idle = section["members"][1]
    assert idle["n"] == 0 and idle["covered"] == 0 and idle["histogram"] == [0] * 8
    assert idle["high_quality_fraction"] is None and idle["version"] == 2


def test_no_section_without_members_or_without_modes(references, draw):
    batch = draw(references["ring8"], 200, seed=4)
    assert "ensemble" not in diagnose(batch, references["ring8"], "ring8")
    members = Members(("only",), (1,), (1.0,), np.zeros(200, np.int64))
    assert "ensemble" not in diagnose(batch, None, None, members=members)
