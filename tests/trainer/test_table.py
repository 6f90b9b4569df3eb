"""`python -m trainer table`: the quick mode end to end, the summary arithmetic, reuse of runs."""

import json

import numpy as np
import pytest

from trainer.cli import main
from trainer.evaluation import diagnose_samples
from trainer.table import (
    QUICK,
    RESULT_FILE,
    at_goal,
    build_table,
    cached_result,
    execute,
    mean_and_error,
    needs_report,
    plan,
    section,
    summarise,
    trained,
)


def columns(lines: list[str]) -> dict[str, str]:
    """A one-row markdown section (header, rule, row) as {column name: cell}."""
    header, _, row = lines

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    return dict(zip(cells(header), cells(row), strict=True))


@pytest.fixture(scope="module")
def quick_table(tmp_path_factory):
    """`python -m trainer table --quick` into a temporary runs folder and output folder."""
    root = tmp_path_factory.mktemp("table")
    argv = ["table", "--quick", "--runs-dir", str(root / "runs"), "--out", str(root / "out")]
    assert main(argv) == 0
    return root


def test_quick_table_never_writes_the_committed_table(tmp_path, monkeypatch):
    """Without --runs-dir/--out, a quick table writes under runs/table-quick (git-ignored),
    not docs/results or the full table's runs/table."""
    monkeypatch.chdir(tmp_path)
    assert main(["table", "--quick"]) == 0
    assert (tmp_path / "runs" / "table-quick" / "results" / "collapse.md").is_file()
    assert not (tmp_path / "docs").exists() and not (tmp_path / "runs" / "table").exists()


def test_quick_table_writes_markdown_json_and_figure(quick_table):
    out = quick_table / "out"
    document = json.loads((out / "collapse.json").read_text())
    assert len(document["runs"]) == 2 * 2 * 2  # benchmarks x methods x seeds
    assert {row["benchmark"] for row in document["rows"]} == {"ring8", "stacked-digits"}
    text = (out / "collapse.md").read_text()
    assert "python -m trainer table --quick" in text
    assert "| PacGAN2 | `ring8-pacgan2` | 2 | 20 |" in text
    assert "PacGAN (Lin et al. 2018), Table 1" in text and "VEEGAN" in text
    assert (out / "collapse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_table_rows_are_the_mean_of_its_runs(quick_table):
    document = json.loads((quick_table / "out" / "collapse.json").read_text())
    for row in document["rows"]:
        runs = [
            r
            for r in document["runs"]
            if (r["benchmark"], r["method"]) == (row["benchmark"], row["method"])
        ]
        covered = [r["modes_covered"] for r in runs]
        assert row["modes_covered"][0] == pytest.approx(sum(covered) / len(covered))
        assert row["modes_total"] == (8 if row["benchmark"] == "ring8" else 1000)
        assert {r["config"]["eval_samples"] for r in runs} == {
            500 if row["benchmark"] == "ring8" else 1000
        }


def test_runs_record_where_they_trained_and_a_device_that_cannot_run_is_a_usage_error(
    quick_table, tmp_path, capsys
):
    document = json.loads((quick_table / "out" / "collapse.json").read_text())
    assert {run["device"] for run in document["runs"]} == {"cpu"}  # the table's default
    argv = ["table", "--quick", "--device", "tpu", "--runs-dir", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "unknown device 'tpu'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before any run started


def test_stacked_digits_runs_also_count_every_sample(quick_table):
    document = json.loads((quick_table / "out" / "collapse.json").read_text())
    for run in document["runs"]:
        if run["benchmark"] == "ring8":
            assert "modes_covered_all" not in run and "kl_all" not in run
        else:  # an untrained generator: no confident sample, yet every sample has a label
            assert run["modes_covered"] <= run["modes_covered_all"]
            assert run["modes_covered_all"] >= 1 and run["kl_all"] > 0
    text = (quick_table / "out" / "collapse.md").read_text()
    ring8, stacked = text.split("## stacked-digits")
    assert "every sample" not in ring8.split("## ring8")[1]
    assert "| modes, every sample | KL, every sample |" in stacked


def test_runs_recorded_before_the_every_sample_count_show_n_a():
    common = {"benchmark": "stacked-digits", "method": "gan", "seconds": 1.0}
    common |= {"config": {"steps": 3}, "modes_total": 1000, "high_quality_fraction": 0.1}
    old = common | {"modes_covered": 500, "kl": 1.0}
    new = common | {"modes_covered": 600, "kl": 0.8, "modes_covered_all": 990, "kl_all": 0.2}
    (row,) = summarise([old, new])
    assert row["seeds_all"] == 1 and row["modes_covered_all"] == (990.0, 0.0)
    (row,) = summarise([old])
    assert row["seeds_all"] == 0 and row["modes_covered_all"] is None


def test_a_second_run_reuses_finished_runs(quick_table, capsys):
    result = quick_table / "runs" / "ring8" / "gan" / "seed0" / "result.json"
    before = result.read_text()
    argv = ["table", "--quick", "--runs-dir", str(quick_table / "runs"), "--out", str(quick_table)]
    assert main(argv) == 0
    assert result.read_text() == before
    assert "[1/" not in capsys.readouterr().out  # nothing was trained again


def test_mean_and_standard_error():
    assert mean_and_error([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0 / 3**0.5))
    assert mean_and_error([5.0]) == (5.0, 0.0)


def test_runs_without_high_quality_samples_leave_kl_out():
    results = [
        {"benchmark": "ring8", "method": "gan", "seconds": 1.0, "config": {"steps": 3}}
        | {"modes_covered": covered, "modes_total": 8, "high_quality_fraction": hq, "kl": kl}
        for covered, hq, kl in ((0, 0.0, None), (2, 0.5, 1.0), (4, 1.0, 0.5))
    ]
    (row,) = summarise(results)
    assert row["kl_undefined"] == 1 and row["kl"][0] == pytest.approx(0.75)
    assert row["modes_covered"][0] == pytest.approx(2.0)


def test_a_cell_without_a_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no preset ring8-nope"):
        plan(["ring8"], ["nope"], 1, tmp_path)


def test_score_model_cells_train_with_the_score_loop(tmp_path):
    tiny = {"steps": 3, "eval_every": 0, "snapshot_every": 0, "eval_samples": 200}
    tiny |= {"sample_steps": 2, "width": 8, "depth": 1, "batch_size": 16}
    runs = plan(["ring8"], ["edm"], 1, tmp_path / "runs", {"ring8": tiny})
    assert not runs[0].is_gan and runs[0].config.kind == "score" and runs[0].config.steps == 3
    (result,) = execute(runs, jobs=1, progress=False)
    assert result["method"] == "edm" and result["modes_total"] == 8
    assert 0.0 <= result["high_quality_fraction"] <= 1.0
    assert (runs[0].run_dir / "samples.npy").is_file()


def test_vae_cells_train_with_the_vae_loop_and_record_active_dims(tmp_path):
    tiny = {"steps": 3, "eval_every": 0, "snapshot_every": 0, "eval_samples": 200}
    tiny |= {"hidden": 8, "depth": 1, "batch_size": 16, "kl_warmup": 2}
    runs = plan(["grid25"], ["vae"], 1, tmp_path / "runs", {"grid25": tiny})
    assert runs[0].config.kind == "vae"
    (result,) = execute(runs, jobs=1, progress=False)
    assert result["method"] == "vae" and result["modes_total"] == 25
    assert 0 <= result["active_dims"] <= 2 and result["decoder_std"] > 0
    assert np.load(runs[0].run_dir / "samples.npy").shape == (64, 2)
    cells = columns(section("grid25", summarise([result])))
    assert cells["active latent dims"] == f"{result['active_dims']:.1f}"
    healthy = int(result["verdict"] == "healthy")
    assert cells["healthy seeds"] == f"{healthy} of 1"  # by the full report
    assert cells["seeds at the goal"] == f"{int(at_goal(result))} of 1"


@pytest.mark.parametrize("method", ["cgan", "cgan-mmd"])
def test_conditional_cells_record_their_healthy_classes(tmp_path, method):
    tiny = {"steps": 30, "eval_every": 0, "snapshot_every": 0, "eval_samples": 400}
    tiny |= {"g_hidden": 16, "g_depth": 2, "d_hidden": 16, "d_depth": 2, "batch_size": 32}
    runs = plan(["ring8"], [method], 1, tmp_path / "runs", {"ring8": tiny})
    assert runs[0].config.classes == 8
    (result,) = execute(runs, jobs=1, progress=False)
    assert 0 <= result["classes_healthy"] <= 8
    cells = columns(section("ring8", summarise([result])))
    assert cells["healthy classes"] == f"{result['classes_healthy']:.1f} of 8"


@pytest.mark.parametrize("benchmark, classes", [("ring8", 8), ("grid25", 25)])
def test_the_conditional_mmd_cells_are_the_conditional_gan_with_mmd(tmp_path, benchmark, classes):
    (cgan,) = plan([benchmark], ["cgan"], 1, tmp_path)
    (with_mmd,) = plan([benchmark], ["cgan-mmd"], 1, tmp_path)
    assert with_mmd.config.classes == classes
    assert {**with_mmd.config.to_dict(), "mitigations": []} == cgan.config.to_dict()
    assert list(with_mmd.config.mitigations) == ["mmd"]


def test_a_run_of_another_recipe_in_the_runs_folder_starts_over(quick_table):
    fields = {"steps": 10, "eval_every": 0, "snapshot_every": 0, "eval_samples": 500}
    runs = plan(["ring8"], ["gan"], 1, quick_table / "runs", {"ring8": fields})
    (result,) = execute(runs, jobs=1, progress=False)  # the folder holds a 20-step run
    assert result["config"]["steps"] == 10
    lines = (runs[0].run_dir / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(line)["step"] for line in lines) == 10


def test_no_train_writes_the_finished_runs_and_names_the_rest(quick_table):
    out = quick_table / "no-train"
    build_table(
        ["ring8"],
        ["gan", "pacgan4"],
        2,
        quick_table / "runs",
        out,
        "python -m trainer table --no-train",
        overrides=QUICK["overrides"],
        train=False,
        progress=False,
    )
    document = json.loads((out / "collapse.json").read_text())
    assert {(r["method"], r["seed"]) for r in document["runs"]} == {("gan", 1)}  # seed 0: 10 steps
    text = (out / "collapse.md").read_text()
    assert "Not run (no finished run in the runs folder): `ring8-gan` (1 seed(s)), " in text
    assert "`ring8-pacgan4` (2 seed(s))" in text


def test_every_run_records_the_full_reports_verdict_and_coverage(quick_table):
    """The table's runs carry the service's full report of their evaluation batch: its
    verdict (feature rules included) and its coverage against identical distributions."""
    fields = QUICK["overrides"]["ring8"]
    (run,) = plan(["ring8"], ["pacgan2"], 1, quick_table / "runs", {"ring8": fields})
    result = json.loads((run.run_dir / RESULT_FILE).read_text())
    state = trained(run)  # finished: the checkpoint, no training
    report = diagnose_samples(state.samples(fields["eval_samples"], 0), "ring8")
    manifold = report["features"]["manifold"]
    assert result["verdict_rules"] == "full"
    assert result["verdict"] == report["verdict"]["status"]
    assert result["coverage"] == pytest.approx(manifold["coverage"])
    assert result["coverage_identical"] == pytest.approx(manifold["coverage_expected_identical"])
    assert result["near_duplicate_fraction"] == report["duplicates"]["near_fraction"]
    text = (quick_table / "out" / "collapse.md").read_text()
    assert "| coverage (identical) | healthy seeds |" in text


def test_results_without_the_full_reports_keys_are_evaluated_again():
    assert not needs_report(exact_like())
    assert needs_report(exact_like(verdict_rules="modes"))
    assert needs_report({k: v for k, v in exact_like().items() if k != "kl_exact"})


def test_a_run_judged_by_the_mode_rules_only_is_evaluated_again_without_training(tmp_path):
    fields = {"steps": 10, "eval_every": 0, "snapshot_every": 0, "eval_samples": 500}
    runs = plan(["ring8"], ["gan"], 1, tmp_path / "runs", {"ring8": fields})
    (first,) = execute(runs, jobs=1, progress=False)
    path = runs[0].run_dir / RESULT_FILE
    feature_keys = ("coverage", "coverage_identical", "coverage_ratio", "near_duplicate_fraction")
    old = {k: v for k, v in first.items() if k not in feature_keys and k != "verdict_rules"}
    old |= {"verdict": "healthy", "seconds": 1234.0}  # as an older table recorded it
    path.write_text(json.dumps(old))
    (row,) = summarise([old])
    cells = columns(section("ring8", [row]))
    assert (
        cells["coverage (identical)"] == "n/a" and cells["healthy seeds"] == "1 of 1 (mode rules)"
    )
    log = (runs[0].run_dir / "metrics.jsonl").read_text()

    (again,) = execute(runs, jobs=1, progress=False)
    assert (runs[0].run_dir / "metrics.jsonl").read_text() == log  # not trained again
    assert again["seconds"] == 1234.0 and again["report_seconds"] > 0
    assert {k: again[k] for k in feature_keys} == {k: first[k] for k in feature_keys}
    assert again["verdict"] == first["verdict"] and again["verdict_rules"] == "full"
    (row,) = summarise([again, old | {"seed": 1}])
    assert columns(section("ring8", [row]))["healthy seeds"] == (
        f"{int(first['verdict'] == 'healthy') + 1} of 2 (1 by the mode rules only)"
    )


def exact_like(**changes):
    """A ring8 result as an exact sampler of 2,500 scores it (full report), with changes."""
    result = {"benchmark": "ring8", "method": "gan", "seed": 0, "seconds": 1.0}
    result |= {"config": {"dataset": "ring8", "steps": 5000}, "verdict_rules": "full"}
    result |= {"modes_covered": 8, "modes_total": 8, "high_quality_fraction": 0.988}
    result |= {"kl": 0.0016, "kl_exact": 0.0014, "verdict": "healthy"}
    result |= {"coverage": 0.97, "coverage_identical": 0.969}
    return result | changes


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, True),
        ({"high_quality_fraction": 0.9689}, True),  # 98.89% - 2 points, rounded down
        ({"high_quality_fraction": 0.9680}, False),
        ({"kl": 0.0064}, True),  # within 0.005 of the exact sampler's 0.0014
        ({"kl": 0.0066}, False),
        ({"modes_covered": 7}, False),
        ({"coverage": 0.873}, True),  # 0.9 x 0.969 = 0.8721
        ({"coverage": 0.871}, False),  # the tight samples of the best 2-D GANs: 0.27, 0.34
        ({"verdict": "partial_collapse"}, False),
        ({"kl": None}, False),
        ({"verdict_rules": "modes"}, None),  # judged without the full report: unknown
        ({"config": {"dataset": "stacked-digits", "steps": 2000}}, None),  # its own goal
    ],
)
def test_the_2d_goal_holds_seed_by_seed(changes, expected):
    result = exact_like(**changes)
    if "kl_exact" in changes or changes.get("verdict_rules") == "modes":
        result = {k: v for k, v in result.items() if k != "coverage"}
    assert at_goal(result) is expected


def test_the_goal_column_counts_the_seeds_at_the_goal():
    (row,) = summarise([exact_like(), exact_like(seed=1, coverage=0.3), exact_like(seed=2)])
    assert row["at_goal"] == 2
    assert columns(section("ring8", [row]))["seeds at the goal"] == "2 of 3"
    (row,) = summarise([exact_like(), exact_like(seed=1, verdict_rules="modes")])
    assert row["at_goal"] is None  # a seed judged by the mode rules only: not counted
    assert "seeds at the goal" not in columns(section("ring8", [row]))


def test_the_stacked_digits4_presets_evaluate_the_scaled_protocol(tmp_path):
    """stacked-digits4 is a harder benchmark (table --benchmarks stacked-digits4) whose presets
    are the stacked-digits recipes with the dataset changed and 260,000 evaluation samples."""
    from trainer.table import HARDER_BENCHMARKS

    assert "stacked-digits4" in HARDER_BENCHMARKS
    for run in plan(["stacked-digits4"], ["gan", "r1-ema", "edm"], 1, tmp_path):
        three = plan(["stacked-digits"], [run.method], 1, tmp_path)[0].config.to_dict()
        four = run.config.to_dict()
        assert four["dataset"] == "stacked-digits4" and four["eval_samples"] == 260_000
        assert {k: v for k, v in four.items() if three[k] != v} == {
            "dataset": "stacked-digits4",
            "eval_samples": 260_000,
        }


def test_a_tiny_stacked_digits4_table_trains_the_gan_and_the_score_model(tmp_path):
    """4-channel images through the DCGAN and the EDM U-Net, judged on 10,000 modes by the
    stacked-digits4 reference, in the table with its figure."""
    tiny = {"steps": 2, "eval_every": 0, "snapshot_every": 0, "eval_samples": 300}
    tiny |= {"batch_size": 8}
    out = tmp_path / "out"
    build_table(
        ["stacked-digits4"],
        ["gan", "edm"],
        1,
        tmp_path / "runs",
        out,
        "python -m trainer table --benchmarks stacked-digits4",
        overrides={"stacked-digits4": tiny},
        progress=False,
    )
    document = json.loads((out / "collapse.json").read_text())
    assert [run["method"] for run in document["runs"]] == ["gan", "edm"]
    for run in document["runs"]:
        assert run["modes_total"] == 10_000 and run["verdict_rules"] == "full"
        assert 1 <= run["modes_covered_all"] <= 300
        samples = np.load(
            tmp_path / "runs" / "stacked-digits4" / run["method"] / "seed0" / "samples.npy"
        )
        assert samples.shape == (64, 4, 8, 8)
    text = (out / "collapse.md").read_text()
    assert "## stacked-digits4" in text and "| modes (of 10000) |" in text
    assert (out / "collapse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_veegan1200_rows_show_the_papers_10_std_count_and_its_goal_uses_its_own_ceiling():
    """veegan1200 records the same samples counted by the papers' radius (papers_rule); the
    table shows them beside the protocol's columns, and the goal's high-quality ceiling is the
    dataset's q (0.98889 by construction), not 2-D's."""
    papers = {"high_quality_stds": 10.0, "modes_covered": 8, "high_quality_fraction": 0.5}
    config = {"dataset": "veegan1200", "steps": 5000}
    results = [
        exact_like(benchmark="veegan1200", config=config, modes_total=10, modes_covered=10)
        | {"seed": seed, "papers_rule": papers | {"modes_covered": 8 + seed}}
        for seed in (0, 1)
    ]
    (row,) = summarise(results)
    cells = columns(section("veegan1200", [row]))
    assert cells["modes, papers' 10 std"] == "8.5 ± 0.5"
    assert cells["high quality %, papers' 10 std"] == "50.0 ± 0.0"
    assert at_goal(results[0]) is True
    assert at_goal(results[0] | {"high_quality_fraction": 0.968}) is False
    (plain,) = summarise([exact_like()])
    assert "modes, papers' 10 std" not in columns(section("ring8", [plain]))


def test_no_train_tells_the_settings_of_a_grid_apart(quick_table, tmp_path):
    """A seed finished at one --grid point is not finished at another (it crashed drawing the
    other point's missing samples)."""
    import shutil

    runs_dir = tmp_path / "runs"
    finished = runs_dir / "ring8" / "gan" / "eval_samples=500" / "seed1"
    shutil.copytree(quick_table / "runs" / "ring8" / "gan" / "seed1", finished)
    result = json.loads((finished / "result.json").read_text())
    result["setting"] = {"eval_samples": 500}
    (finished / "result.json").write_text(json.dumps(result))
    build_table(
        ["ring8"],
        ["gan"],
        2,
        runs_dir,
        tmp_path / "out",
        "python -m trainer table --no-train --grid eval_samples=500,400",
        overrides=QUICK["overrides"],
        train=False,
        progress=False,
        settings=[(("eval_samples", 500),), (("eval_samples", 400),)],
    )
    document = json.loads((tmp_path / "out" / "collapse.json").read_text())
    assert [(r["setting"], r["seed"]) for r in document["runs"]] == [({"eval_samples": 500}, 1)]
    text = (tmp_path / "out" / "collapse.md").read_text()
    assert "`ring8-gan eval_samples=400` (2 seed(s))" in text
    assert "`ring8-gan eval_samples=500` (1 seed(s))" in text


def test_a_score_result_from_before_a_new_config_field_is_still_reused(tmp_path):
    """A field added to ScoreConfig since a run (axis_gain) holds its default, the old recipe:
    the run's result.json is reused, as a GAN's always was, not trained again."""
    (run,) = plan(["grid100"], ["edm"], 1, tmp_path / "runs")
    config = run.config.to_dict()
    del config["axis_gain"]
    run.run_dir.mkdir(parents=True)
    (run.run_dir / RESULT_FILE).write_text(json.dumps({"config": config, "seed": 0}))
    assert cached_result(run) == {"config": config, "seed": 0}
    config["steps"] += 1
    (run.run_dir / RESULT_FILE).write_text(json.dumps({"config": config, "seed": 0}))
    assert cached_result(run) is None
