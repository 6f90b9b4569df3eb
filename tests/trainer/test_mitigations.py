"""Collapse mitigations: each one's defining property, and every one with every loss."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from trainer.cli import main
from trainer.config import TrainConfig, resolve_config
from trainer.losses import LOSSES
from trainer.mitigations import (
    MITIGATIONS,
    MMD_BANDWIDTHS,
    GaussianKernelSum,
    feature_matching_loss,
    instance_noise_std,
    mmd_squared,
    r1_penalty,
)
from trainer.nets.mlp import MinibatchDiscrimination, MinibatchStddev, MLPDiscriminator
from trainer.runs import update_ema
from trainer.training_loop import build, discriminator_step, generator_objective


def mitigated(config: TrainConfig, *names: str, **fields) -> TrainConfig:
    return dataclasses.replace(config, mitigations=names, **fields)


def test_pack_widens_d_input_by_m(tiny_config):
    plain = build(tiny_config).discriminator
    packed = build(mitigated(tiny_config, "pack", pack=4)).discriminator
    assert packed.body[0].in_features == 4 * plain.body[0].in_features
    assert packed(torch.zeros(8, 2)).shape == (2,)


def test_pack_rejects_a_batch_not_divisible_by_m(tiny_config):
    with pytest.raises(ValueError, match="not divisible by pack 3"):
        mitigated(tiny_config, "pack", pack=3, batch_size=64)
    with pytest.raises(ValueError, match="not divisible by pack=2"):
        MLPDiscriminator(pack=2)(torch.zeros(5, 2))


def generator_gradient(config: TrainConfig) -> torch.Tensor:
    """G's first-layer weight gradient after one D step, from the same seeded state."""
    state = build(config)
    _, real, fake, critic = discriminator_step(state)
    state.discriminator.requires_grad_(False)
    generator_objective(state, real, fake, critic).backward()
    return state.generator.net[0].weight.grad.clone()


def test_unrolled_changes_g_gradient_and_k0_leaves_it(tiny_config):
    plain = generator_gradient(tiny_config)
    k0 = generator_gradient(mitigated(tiny_config, "unrolled", unroll_steps=0))
    k3 = generator_gradient(mitigated(tiny_config, "unrolled", unroll_steps=3))
    assert torch.equal(k0, plain)
    assert not torch.allclose(k3, plain)


def test_spectral_norm_bounds_each_d_linear_layer(tiny_config):
    discriminator = build(mitigated(tiny_config, "spectral-norm")).discriminator
    for _ in range(30):  # power iterations run on each training-mode forward
        discriminator(torch.randn(16, 2))
    layers = [m for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == tiny_config.d_depth + 1
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-2)


def test_minibatch_stddev_adds_one_feature_zero_on_identical_samples():
    h = torch.ones(6, 5) * torch.arange(5.0)
    out = MinibatchStddev()(h)
    assert out.shape == (6, 6)
    assert torch.allclose(out[:, -1], torch.zeros(6), atol=1e-3)
    assert MinibatchStddev()(torch.randn(6, 5))[0, -1] > 0.1


def test_minibatch_discrimination_widens_by_b():
    layer = MinibatchDiscrimination(in_features=7, kernels=4, kernel_dim=3)
    assert layer(torch.randn(10, 7)).shape == (10, 7 + 4)


def test_d_minibatch_layers_sit_before_the_last_layer(tiny_config):
    names = ("minibatch-stddev", "minibatch-discrimination")
    discriminator = build(mitigated(tiny_config, *names, mbd_kernels=5)).discriminator
    assert discriminator.head.in_features == tiny_config.d_hidden + 5 + 1


def test_feature_matching_is_zero_when_features_match(tiny_config):
    discriminator = build(tiny_config).discriminator
    real = torch.randn(32, 2)
    assert feature_matching_loss(discriminator, real, real.clone()).item() == 0.0
    assert feature_matching_loss(discriminator, real, real + 1.0).item() > 0.0


def test_instance_noise_anneals_linearly_to_zero(tiny_config):
    config = mitigated(tiny_config, "instance-noise", instance_noise_std=0.2, steps=100)
    stds = [instance_noise_std(config, step) for step in (0, 50, 100, 120)]
    assert stds == pytest.approx([0.2, 0.1, 0.0, 0.0])


def test_g_ema_follows_the_recurrence_and_is_what_gets_sampled(tiny_config):
    config = mitigated(tiny_config, "g-ema", g_ema_decay=0.9)
    state = build(config)
    plain = build(tiny_config)
    assert plain.generator_average is None and plain.sampling_generator is plain.generator
    assert state.sampling_generator is state.generator_average
    expected = [p.detach().clone() for p in state.generator.parameters()]  # starts equal to G
    for _ in range(3):
        state.train_step()
        current = list(state.generator.parameters())
        expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, current, strict=True)]
    averaged = list(state.generator_average.parameters())
    for mean, wanted, weights in zip(averaged, expected, state.generator.parameters(), strict=True):
        torch.testing.assert_close(mean, wanted)
        assert not torch.equal(mean, weights)  # G moved on; the average lags behind
        assert not mean.requires_grad


def test_g_ema_copies_batch_norm_statistics(tiny_image_config):
    state = build(mitigated(tiny_image_config, "g-ema"))
    state.train_step()
    for mean, current in zip(
        state.generator_average.buffers(), state.generator.buffers(), strict=True
    ):
        assert torch.equal(mean, current)
    before = [b.clone() for b in state.generator.buffers()]
    update_ema(state.generator_average, state.generator, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(before, state.generator.buffers(), strict=True))


def test_r1_penalty_is_zero_for_a_constant_d():
    discriminator = MLPDiscriminator(hidden=8, depth=2)
    with torch.no_grad():
        discriminator.head.weight.zero_()  # D(x) = bias, whatever x
    assert r1_penalty(discriminator, torch.randn(16, 2), gamma=10.0).item() == 0.0
    assert r1_penalty(MLPDiscriminator(hidden=8), torch.randn(16, 2), gamma=10.0).item() > 0.0


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"mitigations": ("nope",)}, "unknown mitigation 'nope'"),
        ({"mitigations": ("r1", "r1")}, "repeat"),
        ({"mitigations": ("ttur",), "lr_g": 1e-4, "lr_d": 1e-4}, "lr_d > lr_g"),
        ({"mitigations": ("unrolled", "feature-matching")}, "choose one"),
        ({"mitigations": ("mmd", "feature-matching")}, "choose one"),
        ({"mitigations": ("mmd",), "mmd_weight": -1.0}, "mmd_weight"),
        ({"mitigations": ("mmd",), "mmd_bandwidth_scale": 0.0}, "mmd_bandwidth_scale"),
        ({"mitigations": ("diffaugment",)}, "not an image dataset"),
        ({"mitigations": ("noise-injection",), "latent_dim": 4, "classes": 4}, "classes 0"),
        ({"mitigations": ("noise-injection",)}, "latent_dim must be at least 3, got 2"),
        ({"mitigations": ("fourier-features",), "fourier_features": 0}, "fourier_features"),
        ({"mitigations": ("fourier-features",), "fourier_max_frequency": 0.0}, "fourier_max"),
    ],
)
def test_bad_mitigations_fail(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)


def test_a_preset_lists_mitigations():
    config = resolve_config("ring8-pacgan4")
    assert config.mitigations == ("pack",) and config.pack == 4


@pytest.mark.parametrize("loss", LOSSES.names())
@pytest.mark.parametrize("name", MITIGATIONS.names())
def test_every_mitigation_trains_with_every_loss(tiny_config, tiny_image_config, loss, name):
    config = tiny_image_config if name == "diffaugment" else tiny_config
    fields = {"lr_d": 2 * config.lr_g} if name == "ttur" else {}
    fields |= {"latent_dim": 4} if name == "noise-injection" else {}
    state = build(mitigated(config, name, loss=loss, unroll_steps=2, **fields))
    losses = [state.train_step() for _ in range(3)]
    assert state.step == 3
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in losses)


@pytest.mark.parametrize("name", ["noise-injection", "fourier-features", "minibatch-nn"])
def test_point_mitigations_refuse_images(tiny_image_config, name):
    with pytest.raises(ValueError, match="image dataset"):
        mitigated(tiny_image_config, name)


def test_noise_injection_adds_scaled_noise_from_the_last_latent_axes(tiny_config):
    generator = build(mitigated(tiny_config, "noise-injection", latent_dim=5)).generator
    assert generator.net[0].in_features == 3  # 5 latent axes, the last 2 are the noise
    z = torch.randn(16, 5)
    other = torch.cat([z[:, :3], torch.randn(16, 2)], dim=1)  # the same first axes, new noise
    with torch.no_grad():
        assert torch.equal(generator(z), generator(other))  # the scale starts at 0
        generator.noise_scale.copy_(torch.tensor([0.5, -2.0]))
        shift = generator(other) - generator(z)
    torch.testing.assert_close(shift, (other[:, 3:] - z[:, 3:]) * torch.tensor([0.5, -2.0]))
    generator(z).sum().backward()
    assert generator.noise_scale.grad is not None


def test_noise_injection_needs_a_latent_axis_beyond_the_noise(tiny_config):
    with pytest.raises(ValueError, match="latent_dim must be at least 3"):
        build(mitigated(tiny_config, "noise-injection", latent_dim=2))


def test_fourier_features_join_sin_and_cos_of_fixed_projections(tiny_config):
    config = mitigated(tiny_config, "fourier-features", fourier_features=8)
    first, again = build(config).discriminator, build(config).discriminator
    fourier = first.fourier
    assert first.body[0].in_features == 2 + 16
    torch.testing.assert_close(fourier.frequencies, again.fourier.frequencies)  # seeded
    magnitudes = fourier.frequencies.norm(dim=0)
    assert ((magnitudes >= 1 - 1e-5) & (magnitudes <= config.fourier_max_frequency)).all()
    x = torch.randn(4, 2)
    features = fourier(x)
    phase = x @ fourier.frequencies
    torch.testing.assert_close(features, torch.cat([x, phase.sin(), phase.cos()], dim=1))
    assert "fourier.frequencies" in first.state_dict()  # a buffer: saved, never trained
    assert all(p is not fourier.frequencies for p in first.parameters())


def test_minibatch_nn_joins_the_log_distance_to_the_nearest_other_sample(tiny_config):
    discriminator = build(mitigated(tiny_config, "minibatch-nn")).discriminator
    assert discriminator.body[0].in_features == 3
    x = torch.tensor([[0.0, 0.0], [0.0, 0.5], [3.0, 0.0], [3.0, 0.0]], requires_grad=True)
    features = discriminator.nearest(x)
    torch.testing.assert_close(features[:, :2], x)
    expected = torch.log(torch.tensor([0.5, 0.5, 1e-6, 1e-6]))  # coinciding: sqrt(1e-12)
    torch.testing.assert_close(features[:, 2], expected)
    features[:, 2].sum().backward()  # finite where two samples coincide
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad[:2], torch.tensor([[0.0, -4.0], [0.0, 4.0]]))


def test_mmd_squared_is_gretton_et_al_s_unbiased_estimate():
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(5, 2, generator=generator), torch.randn(4, 2, generator=generator)
    bandwidths = (0.5, 2.0)

    def k(a, b):
        return sum(math.exp(-float((a - b).pow(2).sum()) / (2 * s * s)) for s in bandwidths)

    def mean_off_diagonal(x):
        n = len(x)
        return sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))

    cross = sum(k(a, b) for a in real for b in fake) / (len(real) * len(fake))
    expected = mean_off_diagonal(real) + mean_off_diagonal(fake) - 2 * cross
    fake.requires_grad_(True)
    value = mmd_squared(real, fake, bandwidths)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_the_kernel_sum_s_gradient_is_autograd_s_and_far_pairs_underflow_to_nothing():
    generator = torch.Generator().manual_seed(2)
    squared = (4 * torch.rand(6, 5, generator=generator, dtype=torch.float64)).requires_grad_(True)
    scales = (-2.0, -0.5, -0.02)
    assert torch.autograd.gradcheck(lambda d: GaussianKernelSum.apply(d, scales), (squared,))
    direct = torch.exp(squared.detach().unsqueeze(-1) * torch.tensor(scales, dtype=torch.float64))
    direct = direct.sum(dim=-1)
    torch.testing.assert_close(GaussianKernelSum.apply(squared, scales), direct)
    far = torch.tensor([[0.0, 1e4]], requires_grad=True)  # exp(-1e4 / (2 * 0.05^2)) is 0 in float32
    kernel = GaussianKernelSum.apply(far, (-200.0,))
    kernel.sum().backward()
    assert kernel[0, 0].item() == 1.0 and 0.0 <= kernel[0, 1].item() < 1e-37
    assert far.grad[0, 1].abs().item() < 1e-34


def test_mmd_pushes_a_tight_batch_apart_and_is_near_zero_for_the_same_distribution():
    generator = torch.Generator().manual_seed(1)
    real = 0.01 * torch.randn(400, 2, generator=generator)
    same = 0.01 * torch.randn(400, 2, generator=generator)
    tight = (0.003 * torch.randn(400, 2, generator=generator)).requires_grad_(True)
    assert abs(mmd_squared(real, same).item()) < 0.02 < mmd_squared(real, tight).item()
    mmd_squared(real, tight).backward()
    outward = (tight.grad * tight.detach()).sum(dim=1)  # < 0: descent moves a point outward
    assert (outward < 0).float().mean() > 0.9


def test_mmd_adds_to_the_adversarial_loss(tiny_config):
    state = build(mitigated(tiny_config, "mmd", mmd_weight=3.0))
    _, real, fake, critic = discriminator_step(state)
    adversarial = state.loss.generator_loss(critic, fake)
    expected = adversarial + 3.0 * mmd_squared(real, fake)
    torch.testing.assert_close(generator_objective(state, real, fake, critic), expected)


def test_mmd_bandwidth_scale_widens_every_kernel(tiny_config):
    state = build(mitigated(tiny_config, "mmd", mmd_weight=3.0, mmd_bandwidth_scale=4.0))
    _, real, fake, critic = discriminator_step(state)
    adversarial = state.loss.generator_loss(critic, fake)
    wide = tuple(4.0 * s for s in MMD_BANDWIDTHS)
    expected = adversarial + 3.0 * mmd_squared(real, fake, wide)
    torch.testing.assert_close(generator_objective(state, real, fake, critic), expected)
    assert not torch.allclose(mmd_squared(real, fake, wide), mmd_squared(real, fake))


def test_cli_takes_a_comma_separated_list(capsys):
    status = main(["train", "ring8-gan", "--mitigations", "pack,r1", "--dry-run"])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["mitigations"] == ["pack", "r1"]


def test_cli_rejects_an_unknown_mitigation(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "ring8-gan", "--mitigations", "pack,nope", "--dry-run"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown mitigation 'nope'" in err and "usage:" in err
