"""Image GANs: the DCGAN pair with D's mitigations, DiffAugment, training and evaluation on the
image datasets through the bundled classifier references, and export with diagnostics."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from trainer.config import TrainConfig, resolve_config
from trainer.export import export_gan
from trainer.mitigations import cutout, diff_augment, translate
from trainer.nets import ARCHITECTURES
from trainer.training_loop import build, training_loop


def images(n: int = 4, channels: int = 3) -> torch.Tensor:
    """Distinct positive pixel values, so moved and zeroed pixels are visible."""
    return torch.arange(1, n * channels * 64 + 1, dtype=torch.float32).reshape(n, channels, 8, 8)


def test_translation_shifts_each_image_by_at_most_one_pixel_with_zeros_shifted_in():
    x = images(64)
    moved = translate(x, 0.125, torch.Generator().manual_seed(0))
    shifts = set()
    for before, after in zip(x, moved, strict=True):
        matches = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if torch.equal(
                torch.roll(before, (dy, dx), dims=(1, 2))[:, 1:-1, 1:-1], after[:, 1:-1, 1:-1]
            )
        ]
        assert len(matches) == 1  # the interior is the image moved by one offset
        shifts.add(matches[0])
        assert (after == 0).sum() == 3 * (
            8 * abs(matches[0][0]) + 8 * abs(matches[0][1])
        ) - 3 * abs(matches[0][0] * matches[0][1])
    assert len(shifts) == 9  # every offset in [-1, 1]^2 occurs over 64 images


def test_cutout_zeroes_one_square_of_half_the_side_on_every_channel():
    x = images(64)
    cut = cutout(x, 0.5, torch.Generator().manual_seed(0))
    for before, after in zip(x, cut, strict=True):
        zeroed = after == 0
        assert torch.equal(zeroed[0], zeroed[1]) and torch.equal(zeroed[0], zeroed[2])
        rows, cols = torch.nonzero(zeroed[0], as_tuple=True)
        assert 1 <= rows.numel() <= 16  # a 4x4 square, clipped at the borders
        assert rows.numel() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert torch.equal(after[~zeroed], before[~zeroed])


def test_diff_augment_is_differentiable_and_seeded():
    x = torch.rand(8, 3, 8, 8, requires_grad=True)
    first = diff_augment(x, torch.Generator().manual_seed(1))
    first.sum().backward()
    assert x.grad is not None and 0 < (x.grad != 0).float().mean() < 1
    again = diff_augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)


def test_pack_joins_m_images_on_the_channel_axis():
    _, plain = ARCHITECTURES.get("dcgan")(latent_dim=4, channels=3, width=8)
    _, packed = ARCHITECTURES.get("dcgan")(latent_dim=4, channels=3, width=8, d_pack=4)
    assert packed.body[0].in_channels == 4 * plain.body[0].in_channels == 12
    assert packed(torch.zeros(8, 3, 8, 8)).shape == (2,)


def test_dcgan_minibatch_layers_and_spectral_norm():
    _, discriminator = ARCHITECTURES.get("dcgan")(
        latent_dim=4,
        channels=1,
        width=8,
        d_minibatch_stddev=True,
        d_mbd_kernels=5,
        d_spectral_norm=True,
    )
    assert discriminator.head.in_features == 8 * 8 + 5 + 1
    for _ in range(30):  # power iterations advance on each training-mode forward
        discriminator(torch.randn(16, 1, 8, 8))
    discriminator.eval()
    for module in [*discriminator.body, discriminator.head]:
        if hasattr(module, "weight") and module.weight.dim() > 1:
            top = torch.linalg.matrix_norm(module.weight.reshape(module.weight.shape[0], -1), 2)
            assert top.item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"dataset": "digits"}, "use arch 'dcgan'"),
        ({"arch": "dcgan"}, "use arch 'mlp'"),
        ({"dataset": "digits", "arch": "dcgan", "conv_width": 0}, "conv_width must be >= 1"),
    ],
)
def test_architecture_and_dataset_must_fit(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)


def test_image_gan_trains_and_evaluates_through_the_classifier(tiny_image_config, tmp_path):
    config = dataclasses.replace(tiny_image_config, mitigations=("diffaugment", "pack"), pack=2)
    state = training_loop(config, tmp_path / "run", progress=False)
    result = state.evaluate()
    assert result["modes_total"] == 1000
    assert 0 <= result["modes_covered"] <= 1000
    assert 0.0 <= result["high_quality_fraction"] <= 1.0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["modes_total"] == 1000


def test_image_gan_exports_a_card_with_classifier_diagnostics(
    tiny_image_config, tmp_path, card_validator
):
    config = dataclasses.replace(tiny_image_config, dataset="digits")
    training_loop(config, tmp_path / "run", progress=False)
    card = json.loads(export_gan(tmp_path / "run", tmp_path / "models", "digits-tiny").read_text())
    card_validator.validate(card)
    assert card["output"]["shape"] == [-1, 1, 8, 8] and card["reference"] == "digits"
    assert card["diagnostics"]["modes"]["total"] == 10 and card["diagnostics"]["n"] == 2500


def test_stacked_mnist_gan_trains_exports_and_runs_at_28x28(
    tiny_image_config, tmp_path, card_validator
):
    """Stacked MNIST at the papers' 28x28: trained, evaluated through the bundled
    mnist-classifier (the stacked-mnist reference), exported, and run by onnxruntime."""
    import onnxruntime

    config = dataclasses.replace(tiny_image_config, dataset="stacked-mnist", eval_samples=500)
    state = training_loop(config, tmp_path / "run", progress=False)
    assert state.evaluate()["modes_total"] == 1000
    card_path = export_gan(tmp_path / "run", tmp_path / "models", "stacked-mnist-tiny")
    card = json.loads(card_path.read_text())
    card_validator.validate(card)
    assert card["output"]["shape"] == [-1, 3, 28, 28] and card["reference"] == "stacked-mnist"
    assert card["architecture"]["args"]["size"] == 28
    assert card["diagnostics"]["modes"]["total"] == 1000
    onnx_files = sorted(card_path.parent.rglob("*.onnx"))
    session = onnxruntime.InferenceSession(str(onnx_files[0]), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(0).standard_normal((3, config.latent_dim), dtype=np.float32)
    (samples,) = session.run(None, {"z": z})
    with torch.no_grad():
        expected = state.generator.eval()(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(samples, expected, atol=1e-4, rtol=0)


def test_linear_lr_schedule_decays_to_zero(tiny_config):
    state = build(dataclasses.replace(tiny_config, lr_schedule="linear", steps=4))
    rates = []
    for _ in range(4):
        state.train_step()
        rates.append(state.optimizer_g.param_groups[0]["lr"])
    assert rates == pytest.approx([tiny_config.lr_g * f for f in (1.0, 0.75, 0.5, 0.25)])


def test_image_presets_resolve():
    for name in ("stacked-digits-gan", "stacked-digits-pacgan4"):
        config = resolve_config(name)
        assert config.dataset == "stacked-digits" and config.arch == "dcgan"
        assert config.eval_samples == 26_000


def test_generated_images_have_the_card_shape(tiny_image_config):
    state = build(tiny_image_config)
    from trainer.training_loop import generate

    samples = generate(state.generator, 5, tiny_image_config.latent_dim, seed=0)
    assert samples.shape == (5, 3, 8, 8) and samples.dtype == np.float32
