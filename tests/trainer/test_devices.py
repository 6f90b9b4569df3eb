"""Placement: --device and --amp resolution, what bfloat16 autocast leaves in float32, and the
same run from the same seed on one device."""

import dataclasses

import pytest
import torch

from tests.helpers import run_main
from trainer.devices import Placement, resolve_amp, resolve_device
from trainer.losses import gradient_penalty
from trainer.mitigations import r1_penalty
from trainer.training_loop import build, training_loop

ON_CPU_WITH_AMP = Placement(amp=True)  # bfloat16 autocast on the CPU: --amp on --device cpu


@pytest.mark.parametrize(
    "name, local_rank, gpus, expected",
    [
        ("auto", None, 0, "cpu"),
        ("auto", None, 2, "cuda:0"),
        ("cpu", None, 2, "cpu"),
        ("cuda", None, 1, "cuda:0"),
        ("cuda:1", None, 2, "cuda:1"),
        ("auto", 1, 2, "cuda:1"),  # torchrun: each rank its own GPU
        ("cuda", 0, 2, "cuda:0"),
        ("auto", 1, 0, "cpu"),  # torchrun on CPUs (gloo)
    ],
)
def test_resolve_device(name, local_rank, gpus, expected):
    assert resolve_device(name, local_rank, gpus) == expected


@pytest.mark.parametrize(
    "name, local_rank, gpus, message",
    [
        ("tpu", None, 0, "choose auto, cpu, cuda or cuda:N"),
        ("cuda:", None, 1, "choose auto, cpu, cuda or cuda:N"),
        ("cuda:x", None, 1, "choose auto, cpu, cuda or cuda:N"),
        ("cuda", None, 0, "use --device cpu"),
        ("cuda:2", None, 2, "torch sees 2 CUDA device(s)"),
        ("cuda:1", 0, 2, "each rank uses cuda:LOCAL_RANK"),
        ("auto", 2, 2, "cuda:2 does not exist"),
    ],
)
def test_unusable_devices_are_refused_with_the_fix(name, local_rank, gpus, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(name, local_rank, gpus)


@pytest.mark.parametrize(
    "mode, device, bf16, expected",
    [
        ("auto", "cpu", True, False),  # the CPU stays float32
        ("auto", "cuda:0", True, True),
        ("auto", "cuda:0", False, False),  # before Ampere
        ("on", "cpu", True, True),
        ("off", "cuda:0", True, False),
    ],
)
def test_resolve_amp(mode, device, bf16, expected):
    assert resolve_amp(mode, device, bf16) is expected


def test_amp_on_a_gpu_without_bfloat16_is_refused():
    with pytest.raises(ValueError, match="use --amp off"):
        resolve_amp("on", "cuda:0", bf16_supported=False)


def test_cuda_on_a_machine_without_one_is_a_usage_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["train", "ring8-gan", "--device", "cuda", "--run-dir", str(tmp_path / "run")]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "torch sees no CUDA device here; use --device cpu" in err
    assert not (tmp_path / "run").exists()


def test_autocast_computes_in_bfloat16_and_hands_float32_on(tiny_config):
    state = build(tiny_config, ON_CPU_WITH_AMP)
    inner = []
    state.generator.net[0].register_forward_hook(lambda m, i, output: inner.append(output.dtype))
    with state.placement.autocast():
        samples = state.generator(torch.randn(8, tiny_config.latent_dim))
        score = state.discriminator(samples)
    assert inner == [torch.bfloat16]  # the matrix products run in bfloat16
    assert samples.dtype == score.dtype == torch.float32  # what the losses see


@pytest.mark.parametrize(
    "penalty",
    [
        lambda critic, real, fake: gradient_penalty(critic, real, fake, torch.Generator()),
        lambda critic, real, fake: r1_penalty(critic, real, gamma=10.0),
    ],
    ids=["wgan-gp", "r1"],
)
def test_penalties_that_differentiate_twice_stay_float32(tiny_config, penalty):
    state = build(tiny_config, ON_CPU_WITH_AMP)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    expected = penalty(state.discriminator, real, fake)
    with state.placement.autocast():
        under_amp = penalty(state.discriminator, real, fake)
    assert under_amp.dtype == torch.float32
    assert torch.equal(under_amp, expected)  # the same float32 arithmetic, bit for bit


def test_a_run_under_amp_keeps_float32_weights_and_tracks_float32(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, loss="wgan-gp", mitigations=("r1",), eval_every=0)
    full = training_loop(config, tmp_path / "float32", progress=False)
    mixed = training_loop(config, tmp_path / "amp", progress=False, placement=ON_CPU_WITH_AMP)
    for weight, reference in zip(
        mixed.generator.parameters(), full.generator.parameters(), strict=True
    ):
        assert weight.dtype == torch.float32
        assert torch.allclose(
            weight, reference, atol=2e-3
        )  # bfloat16: 8-bit mantissa (measured 2.7e-4)
    assert not all(
        torch.equal(weight, reference)
        for weight, reference in zip(
            mixed.generator.parameters(), full.generator.parameters(), strict=True
        )
    )  # autocast did change the arithmetic


@pytest.mark.gpu
def test_the_same_seed_gives_the_same_run_on_a_gpu(tiny_config, tmp_path):
    from trainer.distributed import init_placement

    placement = init_placement("cuda", "auto")
    config = dataclasses.replace(tiny_config, eval_every=0)
    runs = [training_loop(config, tmp_path / name, False, False, placement) for name in "ab"]
    for weight, again in zip(
        runs[0].generator.parameters(), runs[1].generator.parameters(), strict=True
    ):
        assert weight.device.type == "cuda" and torch.equal(weight, again)
