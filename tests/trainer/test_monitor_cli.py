"""The monitor's command line: train --keep-snapshots/--stop-on-collapse/--tensorboard, export
--step/--best and plot, on a real tiny run."""

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import run_main
from trainer.cli import main
from trainer.collapse import read_monitor
from trainer.plot import plot_run
from trainer.snapshots import snapshot_steps
from trainer.tensorboard_sink import MissingPackageError, TensorBoardSink

TINY = ["--g-hidden", "16", "--g-depth", "2", "--d-hidden", "16", "--d-depth", "2"]
SCHEDULE = ["--steps", "30", "--log-every", "5", "--eval-every", "10", "--snapshot-every", "10"]


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory) -> Path:
    """A tiny ring8 GAN trained by the CLI, keeping 1 numbered snapshot besides the best."""
    run_dir = tmp_path_factory.mktemp("watched")
    argv = ["train", "ring8-gan", *TINY, *SCHEDULE, "--eval-samples", "500"]
    argv += ["--keep-snapshots", "1", "--no-progress", "--run-dir", str(run_dir)]
    assert main(argv) == 0
    return run_dir


def export(run_dir: Path, models: Path, name: str, *which: str, capsys) -> tuple[int, str]:
    argv = ["export", str(run_dir), "--name", name, "--models-dir", str(models), *which]
    status, out, err = run_main(argv, capsys)
    return status, out.strip() or err


def card_of(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_export_step_and_best_export_the_kept_snapshots(watched_run, tmp_path, capsys):
    best = read_monitor(watched_run)["best_step"]
    assert snapshot_steps(watched_run) == sorted({best, 30})
    status, final = export(watched_run, tmp_path, "final", capsys=capsys)
    assert status == 0
    status, step = export(watched_run, tmp_path, "step", "--step", "30", capsys=capsys)
    assert status == 0
    status, chosen = export(watched_run, tmp_path, "best", "--best", capsys=capsys)
    assert status == 0
    digest = {
        name: card_of(path)["versions"][0]["sha256"]
        for name, path in {"final": final, "step": step, "best": chosen}.items()
    }
    assert digest["step"] == digest["final"]  # the step-30 snapshot is the final checkpoint
    assert (digest["best"] == digest["final"]) == (best == 30)
    assert f"for {best} steps" in card_of(chosen)["description"]


def test_export_of_a_snapshot_not_kept_names_the_kept_ones(watched_run, tmp_path, capsys):
    status, err = export(watched_run, tmp_path, "x", "--step", "15", capsys=capsys)
    assert status == 2 and f"kept: {snapshot_steps(watched_run)}" in err


def test_export_step_without_snapshots_says_how_to_keep_them(trained_run, tmp_path, capsys):
    status, err = export(trained_run, tmp_path, "x", "--step", "10", capsys=capsys)
    assert status == 2 and "--keep-snapshots" in err


def test_step_and_best_are_exclusive(watched_run, tmp_path, capsys):
    status, err = export(watched_run, tmp_path, "x", "--step", "10", "--best", capsys=capsys)
    assert status == 2 and "not allowed with" in err


def test_plot_writes_the_curves_png(watched_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    status, printed, _ = run_main(["plot", str(watched_run), "--out", str(out)], capsys)
    assert status == 0 and printed.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000  # six panels drawn, not an empty canvas


def test_plot_of_a_folder_without_metrics_is_a_usage_error(tmp_path, capsys):
    status, _, err = run_main(["plot", str(tmp_path)], capsys)
    assert status == 2 and "no metrics.jsonl" in err
    with pytest.raises(ValueError, match="is it a run directory"):
        plot_run(tmp_path)


def test_tensorboard_without_the_package_is_a_clear_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    argv = ["train", "ring8-gan", *TINY, "--steps", "2", "--tensorboard"]
    status, _, err = run_main([*argv, "--run-dir", str(tmp_path / "run")], capsys)
    assert status == 2 and "needs the tensorboard package" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(MissingPackageError, match="pip install tensorboard"):
        TensorBoardSink(tmp_path, 0)


def test_tensorboard_events_hold_the_losses_and_evaluations(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["train", "ring8-gan", *TINY, *SCHEDULE, "--eval-samples", "500", "--tensorboard"]
    status, _, _ = run_main([*argv, "--no-progress", "--run-dir", str(tmp_path)], capsys)
    assert status == 0
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/d_loss", "loss/g_loss", "eval/modes_covered", "eval/kl"} <= scalars
    assert [event.step for event in events.Scalars("eval/modes_covered")] == [10, 20, 30]
