"""`python -m trainer ensemble` and the seed rule it and the service share (lab/ensembles.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from lab.ensembles import ensemble_drawer, member_counts, member_stream
from lab.noise import gaussian_latents
from tests.helpers import copy_model
from trainer.cli import main

WEIGHTS = [0.2, 0.3, 0.5]


def scaled_latents(scale: float):
    """A member Draw: latents times `scale`, so each member's rows are recognisable; progress
    (0, n) then (n, n), as lab.sampling's draws report it."""

    def draw(n: int, seed: int, progress=None) -> np.ndarray:
        for done in (0, n) if progress else ():
            progress(done, n)
        return scale * gaussian_latents(n, 2, seed)

    return draw


def test_the_stream_is_the_documented_pcg64_rule():
    """Member seeds are the stream's first K 64-bit outputs >> 1; the uniforms are the next
    outputs >> 11 times 2^-53; a sample's member is the first cumulative weight above its
    uniform (module docstring), recomputed here from the raw bits."""
    seeds, members = member_stream(WEIGHTS, 1000, 42)
    raw = np.random.PCG64(42).random_raw(len(WEIGHTS) + 1000)
    assert seeds == [int(bits) >> 1 for bits in raw[: len(WEIGHTS)]]
    uniforms = (raw[len(WEIGHTS) :] >> np.uint64(11)) * 2.0**-53
    expected = [next(k for k, c in enumerate(np.cumsum(WEIGHTS)) if u < c) for u in uniforms]
    assert members.tolist() == expected


def test_same_seed_same_bits_and_prefixes_agree():
    draw = ensemble_drawer([scaled_latents(s) for s in (1.0, 10.0, 100.0)], WEIGHTS)
    np.testing.assert_array_equal(draw(300, 7), draw(300, 7))
    assert not np.array_equal(draw(300, 7), draw(300, 8))
    np.testing.assert_array_equal(draw(300, 7)[:120], draw(120, 7))  # n splits reproducibly


def test_each_member_fills_its_rows_with_its_own_draw_at_its_seed():
    draws = [scaled_latents(s) for s in (1.0, 10.0, 100.0)]
    samples = ensemble_drawer(draws, WEIGHTS)(500, 3)
    seeds, members = member_stream(WEIGHTS, 500, 3)
    for k, draw in enumerate(draws):
        rows = members == k
        np.testing.assert_array_equal(samples[rows], draw(int(rows.sum()), seeds[k]))


def test_member_shares_follow_the_weights():
    n = 100_000
    counts = np.asarray(member_counts(WEIGHTS, n, 0))
    standard_errors = np.sqrt(n * np.asarray(WEIGHTS) * (1 - np.asarray(WEIGHTS)))
    assert np.all(np.abs(counts - n * np.asarray(WEIGHTS)) < 4 * standard_errors)


def test_progress_counts_samples_from_zero_to_n():
    seen = []
    ensemble_drawer([scaled_latents(1.0), scaled_latents(2.0)], [0.5, 0.5])(
        64, 1, lambda done, total: seen.append((done, total))
    )
    assert seen[0] == (0, 64) and seen[-1] == (64, 64)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.fixture
def models(repo_copy: Path) -> Path:
    """The tiny repository with a second ring8 GAN (ring8-gan-b)."""
    copy_model(repo_copy, "ring8-gan", "ring8-gan-b")
    return repo_copy


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def ensemble_argv(models: Path, *members: str) -> list[str]:
    argv = ["ensemble", "--name", "mix", "--models-dir", str(models)]
    return argv + [part for member in members for part in ("--member", member)]


def test_ensemble_writes_a_card_with_member_histograms(models: Path, capsys):
    status, out, _ = run(ensemble_argv(models, "ring8-gan:0.4", "ring8-gan-b@1:0.6"), capsys)
    assert status == 0 and out.strip().endswith(str(models / "mix" / "card.json"))
    card = json.loads((models / "mix" / "card.json").read_text())
    assert card["kind"] == "ensemble" and card["reference"] == "ring8"
    assert card["output"]["shape"] == [-1, 2] and card["output"]["value_range"] is None
    members = card["versions"][0]["members"]
    assert [(m["model"], m["version"], m["weight"]) for m in members] == [
        ("ring8-gan", 1, 0.4),
        ("ring8-gan-b", 1, 0.6),
    ]
    diagnostics = card["diagnostics"]
    assert (diagnostics["n"], diagnostics["seed"]) == (2500, 0)
    counts = [m["n"] for m in diagnostics["ensemble"]["members"]]
    assert counts == member_counts([0.4, 0.6], 2500, 0)
    assert run(ensemble_argv(models, "ring8-gan:1"), capsys)[0] == 0  # a second version
    versions = json.loads((models / "mix" / "card.json").read_text())["versions"]
    assert [version["version"] for version in versions] == [1, 2]


def test_diagnose_measures_an_ensemble_again(models: Path, capsys):
    assert run(ensemble_argv(models, "ring8-gan:0.5", "ring8-gan-b:0.5"), capsys)[0] == 0
    before = json.loads((models / "mix" / "card.json").read_text())["diagnostics"]
    status, out, _ = run(["diagnose", str(models / "mix")], capsys)
    after = json.loads((models / "mix" / "card.json").read_text())["diagnostics"]
    assert status == 0 and after["ensemble"] == before["ensemble"]


@pytest.mark.parametrize(
    "members, message",
    [
        (("ring8-gan:0.5", "ring8-gan-b:0.4"), "divide each by their sum: ring8-gan:0.555556"),
        (("ring8-gan:0.5", "nowhere:0.5"), "no model 'nowhere'"),
        (("ring8-gan:0.5", "grid25-edm:0.5"), "its dataset is 'grid25', the ensemble's 'ring8'"),
        (("ring8:1",), "'ring8' is a reference, not one of gan, vae, score"),
        (("ring8-gan@4:1",), "'ring8-gan' has no version 4"),
        (("ring8-gan:0.5", "ring8-gan:0.5"), "listed twice; list it once"),
        (("ring8-gan:2",), "0 < WEIGHT <= 1"),
        (("mix:1",), "cannot be its own member"),
    ],
)
def test_bad_members_are_usage_errors_and_write_nothing(models: Path, capsys, members, message):
    status, _, err = run(ensemble_argv(models, *members), capsys)
    assert status == 2 and message in err and "Traceback" not in err
    assert not (models / "mix").exists()


def test_dry_run_prints_the_card_and_writes_nothing(models: Path, capsys):
    argv = ensemble_argv(models, "ring8-gan:0.5", "ring8-gan-b:0.5") + ["--dry-run"]
    status, out, _ = run(argv, capsys)
    assert status == 0 and json.loads(out)["versions"][0]["members"][1]["model"] == "ring8-gan-b"
    assert not (models / "mix").exists()
