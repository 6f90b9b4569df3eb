"""The DCGAN pair for 8x8 images (and 16, 32, MNIST's 28): shapes, range, batch independence of
D, ONNX export."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from trainer.export import output_spec, to_onnx
from trainer.nets import ARCHITECTURES

LATENT_DIM = 16


def build(channels: int, width: int = 16):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ARCHITECTURES.get("dcgan")(latent_dim=LATENT_DIM, channels=channels, width=width)


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_makes_images_in_minus_one_one(channels):
    generator, discriminator = build(channels)
    z = torch.randn(6, LATENT_DIM, generator=torch.Generator().manual_seed(0)) * 10
    images = generator(z)
    assert images.shape == (6, channels, 8, 8) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    logits = discriminator(images)
    assert logits.shape == (6,)


def test_discriminator_scores_each_sample_alone():
    _, discriminator = build(3)
    images = torch.rand(5, 3, 8, 8) * 2 - 1
    together = discriminator(images)
    alone = torch.cat([discriminator(image[None]) for image in images])
    torch.testing.assert_close(together, alone)


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_exports_with_a_dynamic_batch(tmp_path, channels):
    generator = build(channels)[0].eval()
    path = tmp_path / "model.onnx"
    model = to_onnx(generator, LATENT_DIM)
    assert model.ir_version <= 10
    onnx.save_model(model, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        z = np.random.default_rng(batch).standard_normal((batch, LATENT_DIM), dtype=np.float32)
        (samples,) = session.run(["samples"], {"z": z})
        assert samples.shape == (batch, channels, 8, 8)
        with torch.no_grad():
            expected = generator(torch.from_numpy(z)).numpy()
        np.testing.assert_allclose(samples, expected, atol=1e-4, rtol=0)


def test_output_spec_describes_image_output():
    generator = build(3)[0].eval()
    spec = output_spec(generator, LATENT_DIM)
    assert spec == {
        "name": "samples",
        "dtype": "float32",
        "shape": [-1, 3, 8, 8],
        "value_range": [-1.0, 1.0],
    }


@pytest.mark.parametrize("size", [16, 32])
def test_larger_sizes_add_one_upsampling_layer_per_doubling(size):
    generator, discriminator = ARCHITECTURES.get("dcgan")(
        latent_dim=LATENT_DIM, channels=3, width=8, size=size
    )
    transposed = [m for m in generator.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(transposed) == {16: 3, 32: 4}[size]  # 4x4, then one per doubling
    images = generator(torch.randn(2, LATENT_DIM))
    assert images.shape == (2, 3, size, size)
    assert discriminator(images).shape == (2,)


def test_size_8_keeps_the_layer_layout_of_existing_checkpoints():
    generator, discriminator = build(3)
    names = {name for name, _ in generator.named_parameters()}
    assert names == {"net.0.weight", "net.1.weight", "net.1.bias", "net.3.weight"} | {
        "net.4.weight",
        "net.4.bias",
        "net.6.weight",
        "net.6.bias",
    }
    assert [type(m).__name__ for m in discriminator.body] == [
        "Conv2d",
        "LeakyReLU",
        "Conv2d",
        "LeakyReLU",
        "Flatten",
    ]


def test_size_28_starts_at_7x7_and_d_ends_at_3x3():
    """MNIST's side: 7x7 -> 14 -> 28 in G (two doublings, as DCGAN-tensorflow's MNIST G), and
    D's strided convs 28 -> 14 -> 7 -> 3."""
    generator, discriminator = ARCHITECTURES.get("dcgan")(
        latent_dim=LATENT_DIM, channels=3, width=8, size=28
    )
    first = generator.net[0]
    assert first.kernel_size == (7, 7) and first.out_channels == 32
    images = generator(torch.randn(2, LATENT_DIM))
    assert images.shape == (2, 3, 28, 28)
    assert discriminator.features(images).shape == (2, 32 * 3 * 3)
    assert discriminator(images).shape == (2,)


@pytest.mark.parametrize("size", [4, 7, 12, 14, 24])
def test_other_sizes_are_refused(size):
    with pytest.raises(ValueError, match="power of two >= 8, or 7 x 2\\^n >= 28"):
        ARCHITECTURES.get("dcgan")(latent_dim=LATENT_DIM, channels=1, width=8, size=size)


def test_d_width_makes_a_weaker_discriminator_and_leaves_g_alone():
    """The weak-D setting (PacGAN Table 3): D with 1/4 of G's channels; G keeps its layers."""
    generator, discriminator = build(3, width=16)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        weak_g, weak_d = ARCHITECTURES.get("dcgan")(
            latent_dim=LATENT_DIM, channels=3, width=16, d_width=4
        )
    assert (
        weak_d.features(torch.zeros(2, 3, 8, 8)).shape[-1]
        == 4 * discriminator.features(torch.zeros(2, 3, 8, 8)).shape[-1] // 16
    )
    weak_parameters = sum(p.numel() for p in weak_d.parameters())
    assert weak_parameters < sum(p.numel() for p in discriminator.parameters()) / 8
    shapes = {name: tensor.shape for name, tensor in generator.state_dict().items()}
    assert {name: tensor.shape for name, tensor in weak_g.state_dict().items()} == shapes


def test_d_conv_width_is_recorded_only_where_set_and_refused_for_points():
    from trainer.config import TrainConfig
    from trainer.datasets import get_dataset
    from trainer.training_loop import architecture_spec

    dataset = get_dataset("stacked-digits")
    weak = TrainConfig(dataset="stacked-digits", arch="dcgan", conv_width=32, d_conv_width=8)
    assert architecture_spec(weak, dataset)["args"]["d_width"] == 8
    plain = TrainConfig(dataset="stacked-digits", arch="dcgan", conv_width=32)
    assert "d_width" not in architecture_spec(plain, dataset)["args"]
    assert "size" not in architecture_spec(plain, dataset)["args"]  # 8x8 cards as they were
    mnist = TrainConfig(dataset="stacked-mnist", arch="dcgan", conv_width=32)
    assert architecture_spec(mnist, get_dataset("stacked-mnist"))["args"]["size"] == 28
    with pytest.raises(ValueError, match="d_conv_width sets the 'dcgan' D's channels"):
        TrainConfig(d_conv_width=8)
    with pytest.raises(ValueError, match="d_conv_width"):
        TrainConfig(dataset="stacked-digits", arch="dcgan", d_conv_width=-1)
