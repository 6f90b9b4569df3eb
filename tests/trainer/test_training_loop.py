"""The training loop: run-dir contents, reproducibility and exact resume."""

import dataclasses
import json

import pytest
import torch

from trainer.export import load_generator
from trainer.runs import maybe_snapshot
from trainer.telemetry import reproducible_record
from trainer.training_loop import build, training_loop

EVAL_KEYS = {"modes_covered", "modes_total", "high_quality_fraction", "kl"}


def read_metrics(run_dir) -> list[dict]:
    """metrics.jsonl's records without their wall-clock and memory keys (reproducible_record)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [reproducible_record(json.loads(line)) for line in lines]


def test_smoke_run_writes_config_checkpoint_and_metrics(trained_run, tiny_config):
    assert json.loads((trained_run / "config.json").read_text()) == tiny_config.to_dict()
    checkpoint = torch.load(trained_run / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == tiny_config.steps
    assert checkpoint["config"] == tiny_config.to_dict()
    records = read_metrics(trained_run)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all({"d_loss", "g_loss"} <= set(r) for r in records)
    evaluated = [r for r in records if EVAL_KEYS <= set(r)]
    assert [r["step"] for r in evaluated] == [10, 20]
    assert all(r["modes_total"] == 8 and 0 <= r["modes_covered"] <= 8 for r in evaluated)
    assert all(0 <= r["high_quality_fraction"] <= 1 for r in evaluated)


def state_dicts(run_dir) -> dict:
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return {key: checkpoint[key] for key in ("generator", "discriminator", "optimizer_g")}


def assert_bit_identical(first: dict, second: dict) -> None:
    for name in ("generator", "discriminator"):
        for key, tensor in first[name].items():
            assert torch.equal(tensor, second[name][key]), f"{name}.{key} differs"
    moments_first = first["optimizer_g"]["state"]
    moments_second = second["optimizer_g"]["state"]
    for index, state in moments_first.items():
        assert torch.equal(state["exp_avg"], moments_second[index]["exp_avg"])


def test_resume_is_bit_identical(trained_run, tiny_config, tmp_path):
    half = dataclasses.replace(tiny_config, steps=tiny_config.steps // 2)
    training_loop(half, tmp_path, progress=False)
    training_loop(tiny_config, tmp_path, progress=False)
    assert_bit_identical(state_dicts(trained_run), state_dicts(tmp_path))
    assert [r["step"] for r in read_metrics(tmp_path)] == [5, 10, 15, 20]
    records = zip(read_metrics(trained_run), read_metrics(tmp_path), strict=True)
    assert all(a == b for a, b in records)


def test_resume_with_mitigations_is_bit_identical(tiny_config, tmp_path):
    names = ("unrolled", "pack", "r1", "spectral-norm", "minibatch-stddev")
    config = dataclasses.replace(
        tiny_config, loss="wgan-gp", d_steps=2, mitigations=names, unroll_steps=2
    )
    training_loop(config, tmp_path / "straight", progress=False)
    half = dataclasses.replace(config, steps=config.steps // 2)
    training_loop(half, tmp_path / "resumed", progress=False)
    training_loop(config, tmp_path / "resumed", progress=False)
    assert_bit_identical(state_dicts(tmp_path / "straight"), state_dicts(tmp_path / "resumed"))
    assert read_metrics(tmp_path / "straight") == read_metrics(tmp_path / "resumed")


def test_g_ema_resumes_bit_identical_and_is_exported(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, mitigations=("g-ema",), g_ema_decay=0.8)
    straight = training_loop(config, tmp_path / "straight", progress=False)
    training_loop(dataclasses.replace(config, steps=10), tmp_path / "resumed", progress=False)
    resumed = training_loop(config, tmp_path / "resumed", progress=False)
    for mean, other in zip(
        straight.generator_average.parameters(), resumed.generator_average.parameters(), strict=True
    ):
        assert torch.equal(mean, other)
    assert read_metrics(tmp_path / "straight") == read_metrics(tmp_path / "resumed")
    exported, _ = load_generator(tmp_path / "straight")
    for loaded, mean in zip(
        exported.parameters(), straight.generator_average.parameters(), strict=True
    ):
        assert torch.equal(loaded, mean)


def test_a_checkpoint_from_before_a_new_field_still_resumes(tiny_config, tmp_path):
    training_loop(dataclasses.replace(tiny_config, steps=10), tmp_path, progress=False)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del checkpoint["config"]["g_ema_decay"]  # as written before the field existed
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    assert training_loop(tiny_config, tmp_path, progress=False).step == tiny_config.steps


def test_interrupted_run_with_instance_noise_resumes_bit_identical(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, mitigations=("instance-noise",), eval_every=0)
    training_loop(config, tmp_path / "straight", progress=False)
    state = build(config)  # an interrupted run: a snapshot at step 10 of the same recipe
    for _ in range(10):
        state.train_step()
    (tmp_path / "resumed").mkdir()
    maybe_snapshot(state, tmp_path / "resumed", force=True)
    training_loop(config, tmp_path / "resumed", progress=False)
    assert_bit_identical(state_dicts(tmp_path / "straight"), state_dicts(tmp_path / "resumed"))


def test_instance_noise_refuses_a_changed_length(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, mitigations=("instance-noise",), steps=2)
    training_loop(config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="steps"):
        training_loop(dataclasses.replace(config, steps=4), tmp_path, progress=False)


def test_a_different_seed_gives_different_weights(trained_run, tiny_config, tmp_path):
    other = dataclasses.replace(tiny_config, seed=1, steps=1, eval_every=0)
    training_loop(other, tmp_path, progress=False)
    first = state_dicts(trained_run)["generator"]
    assert not torch.equal(
        first["net.0.weight"], state_dicts(tmp_path)["generator"]["net.0.weight"]
    )


def test_resume_refuses_a_changed_recipe(trained_run, tiny_config, tmp_path):
    for name in ("checkpoint.pt", "config.json", "metrics.jsonl"):
        (tmp_path / name).write_bytes((trained_run / name).read_bytes())
    changed = dataclasses.replace(tiny_config, lr_g=1e-3, steps=30)
    with pytest.raises(ValueError, match="lr_g"):
        training_loop(changed, tmp_path, progress=False)


def test_no_resume_starts_over(trained_run, tiny_config, tmp_path):
    for name in ("checkpoint.pt", "config.json", "metrics.jsonl"):
        (tmp_path / name).write_bytes((trained_run / name).read_bytes())
    training_loop(tiny_config, tmp_path, resume=False, progress=False)
    assert_bit_identical(state_dicts(trained_run), state_dicts(tmp_path))
    assert len(read_metrics(tmp_path)) == len(read_metrics(trained_run))
