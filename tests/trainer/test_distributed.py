"""torchrun on the CPU (gloo): two processes train the run one process trains, up to the order
of reductions; rank 0 alone writes; resume needs the same number of processes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.distributed_parity import run_training, train_command, weight_difference
from tests.helpers import run_main
from trainer.cli import main
from trainer.distributed import check_world_size, local_batch_size
from trainer.telemetry import reproducible_record

# The tiny GAN of tests/trainer/conftest.py on the ring8-gan preset, at a constant lr (a
# linear decay would make --steps part of the recipe, and the resume below changes it).
TINY = "--g-hidden=32 --g-depth=2 --d-hidden=32 --d-depth=2 --batch-size=64 --log-every=5"
TINY += " --eval-every=10 --snapshot-every=10 --eval-samples=500 --lr-schedule=constant"
FLAGS = TINY.split()
REPO = Path(__file__).parents[2]
# Documented in docs/trainer-scaling.md: after 20-30 steps the weights of 1 and 2 processes
# differ by at most this (float32 sums taken in another order; measured: see the doc).
WEIGHT_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5  # relative, per logged loss


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl's records without their wall-clock and memory keys (reproducible_record)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [reproducible_record(json.loads(line)) for line in lines]


def train(processes: int, run_dir: Path, steps: int) -> None:
    """The tiny run on ring8-gan for `steps` steps into run_dir: through the CLI in this process
    for one process, under torchrun (gloo) for more."""
    flags = FLAGS + [f"--steps={steps}"]
    if processes > 1:
        run_training("ring8-gan", processes, run_dir, flags)
    else:
        assert main(["train", "ring8-gan", *flags, "--run-dir", str(run_dir), "--no-progress"]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """one/ (1 process) and two/ (2 processes), 20 steps each; then one-30/ and two-30/:
    copies resumed to 30 steps with as many processes."""
    root = tmp_path_factory.mktemp("torchrun")
    for processes, name in ((1, "one"), (2, "two")):
        train(processes, root / name, 20)
        shutil.copytree(root / name, root / f"{name}-30")
        train(processes, root / f"{name}-30", 30)
    return root


@pytest.mark.parametrize("name", ["two", "two-30"])
def test_two_processes_train_the_run_of_one(runs, name):
    difference, _ = weight_difference(runs / name.replace("two", "one"), runs / name)
    assert difference <= WEIGHT_TOLERANCE


def test_two_processes_log_the_losses_and_numbers_of_one(runs):
    one, two = read_metrics(runs / "one-30"), read_metrics(runs / "two-30")
    assert [line["step"] for line in two] == [5, 10, 15, 20, 25, 30]  # once each: one writer
    for single, split in zip(one, two, strict=True):
        for loss in ("d_loss", "g_loss"):
            assert split[loss] == pytest.approx(single[loss], rel=LOSS_TOLERANCE)
        if "modes_covered" in single:
            assert split["modes_covered"] == single["modes_covered"]
            assert split["high_quality_fraction"] == pytest.approx(
                single["high_quality_fraction"],
                abs=0.002,  # one sample in 500
            )


def test_resume_with_the_same_processes_continues_the_run(runs):
    assert read_metrics(runs / "two-30")[:4] == read_metrics(runs / "two")
    checkpoint = torch.load(runs / "two-30" / "checkpoint.pt", weights_only=True)
    assert (checkpoint["step"], checkpoint["world_size"]) == (30, 2)
    assert sorted(path.name for path in (runs / "two-30").iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
        "monitor.json",
    ]


def test_one_process_refuses_a_checkpoint_of_two(runs, tmp_path, capsys):
    shutil.copytree(runs / "two", tmp_path / "run")
    argv = ["train", "ring8-gan", *FLAGS, "--steps=30", "--run-dir", str(tmp_path / "run")]
    status, _, err = run_main(argv, capsys)
    assert status == 2
    assert "written by a run of 2 process(es), this one has 1" in err
    assert "Traceback" not in err
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 20


@pytest.mark.slow  # a third torchrun launch; the refusal itself is tested above
def test_two_processes_refuse_a_checkpoint_of_one(runs, tmp_path):
    shutil.copytree(runs / "one", tmp_path / "run")
    command = train_command("ring8-gan", 2, tmp_path / "run", FLAGS + ["--steps=30"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "written by a run of 1 process(es), this one has 2" in done.stderr
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 20


@pytest.mark.parametrize(
    "batch_size, world_size, pack, message",
    [
        (63, 2, 1, "use a multiple of 2"),
        (100, 3, 1, "use a multiple of 3"),
        (100, 2, 4, "across 2 processes x pack 4; use a multiple of 8"),
    ],
)
def test_a_batch_that_does_not_split_is_refused(batch_size, world_size, pack, message):
    with pytest.raises(ValueError, match=message):
        local_batch_size(batch_size, world_size, pack)


def test_a_batch_that_splits_gives_each_rank_its_share():
    assert local_batch_size(100, 4, pack=1) == 25
    assert local_batch_size(96, 2, pack=4) == 48


def test_the_world_size_refusal_says_how_to_resume():
    check_world_size(2, 2)
    with pytest.raises(ValueError, match="--nproc_per_node x nodes = 4, or start a new run dir"):
        check_world_size(4, 2)


def test_every_rank_holds_the_same_weights_and_batch_norm_statistics(tmp_path):
    script = Path(__file__).with_name("torchrun_ranks.py")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command = launcher + ["--nproc_per_node=2", str(script), str(tmp_path)]
    environment = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert "net.1.running_mean" in first["generator"]  # batch norm: buffers fed by each shard
    for network, tensors in first.items():
        for name, tensor in tensors.items():
            assert torch.equal(tensor, second[network][name]), f"{network}.{name} differs"
    for rank in (0, 1):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert "resumed at different steps (0 to 10)" in message
