"""The collapse monitor: the rule that dates a collapse, monitor.json, early stop and numbered
snapshots, driven through the shared loop (trainer.runs.train) by a scripted run whose mode
counts are known, and by a real tiny GAN."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from trainer.collapse import read_monitor, summarise
from trainer.devices import Placement
from trainer.monitor import MonitorOptions
from trainer.runs import train
from trainer.snapshots import snapshot_steps

# modes covered at evaluations 1, 2, ...: learns, peaks at 6, loses modes from the 5th
SCRIPT = (0, 2, 5, 6, 4, 1, 1, 6)


def evaluation(
    step: int,
    covered: int,
    std: float = 0.0,
    kl: float | None = 0.5,
    expected: float = 8.0,
    verdict: str = "partial_collapse",
) -> dict:
    return {
        "step": step,
        "modes_covered": covered,
        "modes_expected": expected,
        "modes_expected_std": std,
        "kl": kl,
        "verdict": verdict,
    }


def test_collapse_is_dated_at_the_first_loss_of_modes_once_covered():
    evaluations = [evaluation(100 * (i + 1), covered) for i, covered in enumerate(SCRIPT)]
    summary = summarise(evaluations)
    assert summary["collapse_step"] == 500  # 4 < 6 covered at step 400
    assert summary["best_step"] == 400  # the first of the two 6s (equal KL: the earlier)


def test_a_run_that_has_not_learned_yet_has_not_collapsed():
    evaluations = [evaluation(step, 0, kl=None, expected=0.0) for step in (100, 200, 300)]
    summary = summarise(evaluations)
    assert summary["collapse_step"] is None and summary["best_step"] == 100


def test_a_loss_within_chance_is_not_a_collapse():
    # an exact sampler's count spreads by 1 mode: losing 2 of 20 is within 3 std
    evaluations = [evaluation(100, 20, 1.0, expected=20), evaluation(200, 18, 1.0, expected=20)]
    assert summarise(evaluations)["collapse_step"] is None
    evaluations.append(evaluation(300, 16, 1.0, expected=20))
    assert summarise(evaluations)["collapse_step"] == 300


def test_losing_the_high_quality_samples_is_not_a_collapse():
    # one mode with a few good samples, then none: an exact sampler with none covers 0 too
    evaluations = [evaluation(100, 1, expected=2.8), evaluation(200, 0, expected=0.0)]
    assert summarise(evaluations)["collapse_step"] is None


def test_a_loss_the_verdict_calls_healthy_is_not_a_collapse():
    evaluations = [evaluation(100, 8), evaluation(200, 7, verdict="healthy")]
    assert summarise(evaluations)["collapse_step"] is None


def test_the_best_coverage_breaks_ties_by_the_lower_kl():
    evaluations = [evaluation(100, 8, kl=0.4), evaluation(200, 8, kl=0.1), evaluation(300, 7)]
    assert summarise(evaluations)["best_step"] == 200


@dataclass(frozen=True)
class ScriptedConfig:
    """What the loop and the monitor read of a config."""

    steps: int = 80
    log_every: int = 10
    eval_every: int = 10
    snapshot_every: int = 20
    batch_size: int = 4
    dataset: str = "ring8"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_resumable(self, saved: dict[str, Any]) -> None:
        pass


class ScriptedRun:
    """A run whose weight is its step and whose evaluations follow SCRIPT."""

    def __init__(self, config: ScriptedConfig, placement: Placement) -> None:
        self.config, self.placement, self.step = config, placement, 0

    def train_step(self) -> dict[str, float]:
        self.step += 1
        return {"loss": 1.0 / self.step}

    def evaluate(self) -> dict[str, Any]:
        covered = SCRIPT[self.step // self.config.eval_every - 1]
        verdict = "healthy" if covered == 8 else "partial_collapse" if covered else "collapsed"
        return {
            "modes_covered": covered,
            "modes_total": 8,
            "high_quality_fraction": covered / 8,
            "kl": None if covered == 0 else 1.0 / covered,
            "modes_expected": 8.0,
            "modes_expected_std": 0.0,
            "verdict": verdict,
            "verdict_reasons": [f"{covered} of 8"],
        }

    def samples(self, n: int, seed: int) -> np.ndarray:
        return np.zeros((n, 2), np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            "weight": torch.tensor(1.0 * self.step),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        self.step = checkpoint["step"]


def train_scripted(run_dir, steps: int = 80, **options: Any) -> ScriptedRun:
    config = ScriptedConfig(steps=steps)
    return train(ScriptedRun, config, run_dir, progress=False, monitoring=MonitorOptions(**options))


def test_monitor_json_records_every_verdict_and_both_steps(tmp_path):
    train_scripted(tmp_path)
    monitor = read_monitor(tmp_path)
    assert [entry["step"] for entry in monitor["evaluations"]] == list(range(10, 90, 10))
    assert [entry["verdict"] for entry in monitor["evaluations"]][:2] == [
        "collapsed",
        "partial_collapse",
    ]
    assert (monitor["collapse_step"], monitor["best_step"]) == (50, 40)
    assert monitor["collapse"]["modes_covered"] == 4 and not monitor["stopped_on_collapse"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in records if "verdict" in r] == [
        e["verdict"] for e in monitor["evaluations"]
    ]


def test_stop_on_collapse_ends_the_run_at_the_collapse_with_a_checkpoint(tmp_path):
    run = train_scripted(tmp_path, stop_on_collapse=True)
    assert run.step == 50
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 50
    assert read_monitor(tmp_path)["stopped_on_collapse"]
    assert train_scripted(tmp_path, stop_on_collapse=True).step == 50  # stays stopped
    assert train_scripted(tmp_path).step == 80  # resumed without the flag: trains on


def test_snapshots_keep_the_newest_and_the_best(tmp_path):
    train_scripted(tmp_path, keep_snapshots=2)
    assert snapshot_steps(tmp_path) == [40, 70, 80]  # best (40) + the 2 newest
    snapshot = torch.load(tmp_path / "snapshots" / "step-00000040.pt", weights_only=True)
    assert snapshot["step"] == 40 and snapshot["weight"].item() == 40.0


def test_no_snapshots_without_the_option(tmp_path):
    train_scripted(tmp_path)
    assert snapshot_steps(tmp_path) == [] and not (tmp_path / "snapshots").exists()


def test_a_resumed_run_forgets_the_discarded_future(tmp_path):
    train_scripted(tmp_path, steps=40, keep_snapshots=10)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    train_scripted(tmp_path, steps=80, keep_snapshots=10)
    torch.save(checkpoint, tmp_path / "checkpoint.pt")  # back to step 40, as after a crash
    train_scripted(tmp_path, steps=60, keep_snapshots=10)
    monitor = read_monitor(tmp_path)
    assert [entry["step"] for entry in monitor["evaluations"]] == [10, 20, 30, 40, 50, 60]
    assert snapshot_steps(tmp_path) == [10, 20, 30, 40, 50, 60]
    assert monitor["collapse_step"] == 50


def test_stop_on_collapse_is_refused_under_torchrun(tmp_path):
    with pytest.raises(ValueError, match="one-process run"):
        train(
            ScriptedRun,
            ScriptedConfig(),
            tmp_path,
            progress=False,
            placement=Placement(world_size=2),
            monitoring=MonitorOptions(stop_on_collapse=True),
        )


def test_keep_snapshots_must_not_be_negative():
    with pytest.raises(ValueError, match="keep_snapshots"):
        MonitorOptions(keep_snapshots=-1)


def test_a_real_run_logs_the_verdict_at_every_evaluation(trained_run):
    monitor = read_monitor(trained_run)
    assert [entry["step"] for entry in monitor["evaluations"]] == [10, 20]
    statuses = {"healthy", "inconclusive", "partial_collapse", "collapsed"}
    assert all(entry["verdict"] in statuses for entry in monitor["evaluations"])
    assert all(entry["verdict_reasons"] for entry in monitor["evaluations"])
    assert monitor["best_step"] in (10, 20)
