"""The CLI: --dry-run shows the resolved config; bad input is a usage error (exit 2)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import run_main

REPO = Path(__file__).parents[2]


def test_dry_run_prints_the_resolved_config(capsys):
    status, out, _ = run_main(["train", "grid25-gan", "--dry-run"], capsys)
    assert status == 0
    config = json.loads(out)
    assert config["dataset"] == "grid25" and config["eval_samples"] == 2500


def test_flags_override_the_preset(capsys, tmp_path):
    argv = ["train", "ring8-gan", "--steps", "12", "--seed", "5", "--lr-d", "0.002", "--dry-run"]
    status, out, _ = run_main(argv + ["--run-dir", str(tmp_path / "run")], capsys)
    config = json.loads(out)
    assert status == 0
    assert (config["steps"], config["seed"], config["lr_d"]) == (12, 5, 0.002)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "no-such-preset"], "unknown preset"),
        (["train", "ring8-gan", "--dataset", "ring9"], "invalid choice"),
        (["train", "ring8-gan", "--loss", "nope"], "invalid choice"),
        (["train", "ring8-gan", "--arch", "resnet"], "invalid choice"),
        (["train", "ring8-gan", "--arch", "unet"], "unknown arch 'unet'"),
        (["train", "ring8-gan", "--beta", "2"], "beta (VAE): settings not used by gan presets"),
        (["train", "ring8-edm", "--loss", "hinge"], "loss (GAN): settings not used by score"),
        (["train", "ring8-vae", "--sigma-max", "3"], "sigma_max (score-model): settings not"),
        (["train", "ring8-gan", "--steps", "-5"], "steps must be >= 0"),
        (["train", "ring8-gan", "--steps", "ten"], "invalid int value"),
        (["train", "ring8-gan", "--threads", "0"], "must be >= 1"),
        (["export", "/nonexistent/run", "--name", "x"], "no checkpoint.pt"),
        (["export", "/tmp", "--name", "x", "--version", "0"], "must be >= 1"),
        (["reference", "ring9"], "invalid choice"),
        (["fly"], "invalid choice"),
    ],
)
def test_bad_input_is_a_usage_error(capsys, argv, message):
    status, _, err = run_main(argv, capsys)
    assert status == 2
    assert message in err and "usage:" in err
    assert "Traceback" not in err


def test_export_refuses_a_bad_name(capsys, trained_run, tmp_path):
    argv = ["export", str(trained_run), "--name", "Bad Name", "--models-dir", str(tmp_path)]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "invalid model name" in err
    assert not any(tmp_path.iterdir())


def test_module_entry_point_reports_usage_errors_without_traceback():
    command = [sys.executable, "-m", "trainer", "train", "ring8-gan", "--steps", "-1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "steps must be >= 0" in result.stderr and "Traceback" not in result.stderr


def test_export_refuses_an_existing_version(capsys, trained_run, tmp_path):
    (tmp_path / "taken" / "1").mkdir(parents=True)
    argv = ["export", str(trained_run), "--name", "taken", "--models-dir", str(tmp_path)]
    status, _, err = run_main(argv + ["--version", "1"], capsys)
    assert status == 2 and "already exists" in err


def test_train_refuses_to_resume_another_recipe(capsys, trained_run, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes((trained_run / "checkpoint.pt").read_bytes())
    argv = ["train", "ring8-gan", "--run-dir", str(tmp_path), "--no-progress"]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "cannot resume: config changed" in err


def test_threads_sets_torchs_cpu_threads_for_the_run(capsys, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        argv = ["train", "ring8-gan", "--steps", "2", "--eval-every", "0", "--threads", "1"]
        status, out, _ = run_main(argv + ["--run-dir", str(tmp_path), "--no-progress"], capsys)
        assert status == 0 and (tmp_path / "checkpoint.pt").is_file()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
