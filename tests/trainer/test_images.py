"""Image datasets (digits, stacked digits in 3 and 4 channels), the fixed split, and the
user-data loaders."""

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.datasets import DATASETS, get_dataset
from trainer.datasets.images import (
    digits_split,
    load_digit_images,
    load_user_data,
    mode_ids,
    split_digits,
)


def test_digits_are_1797_images_scaled_to_minus_one_one():
    images, labels = load_digit_images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    # 0..16 scaled as x / 8 - 1: every value is on the grid k / 8 - 1
    torch.testing.assert_close((images + 1) * 8, ((images + 1) * 8).round())
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_split_is_fixed_stratified_and_disjoint():
    train, held_out = digits_split()
    assert (len(train), len(held_out)) == (1437, 360)
    assert set(train.tolist()).isdisjoint(held_out.tolist())
    assert sorted(train.tolist() + held_out.tolist()) == list(range(1797))
    # pinned: the split must not change between versions or machines
    assert held_out[:8].tolist() == [21, 24, 28, 34, 35, 37, 39, 42]
    assert int(held_out.sum()) == 337944
    counts = torch.bincount(split_digits("held_out")[1], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_unknown_split_part_is_refused():
    with pytest.raises(ValueError, match="unknown split part"):
        split_digits("test")


CHANNELS = {"digits": 1, "stacked-digits": 3, "stacked-digits4": 4}


@pytest.mark.parametrize("name", list(CHANNELS))
def test_image_datasets_are_registered_with_a_uniform_reference(name):
    assert name in DATASETS.names()
    spec = get_dataset(name).reference_spec()
    assert spec["type"] == "classifier" and spec["channels"] == CHANNELS[name]
    assert len(spec["weights"]) == spec["n_modes"] == 10 ** spec["channels"]
    assert sum(spec["weights"]) == pytest.approx(1.0)


@pytest.mark.parametrize("name, channels", list(CHANNELS.items()))
def test_samples_are_training_images_in_range(name, channels):
    dataset = get_dataset(name)
    assert dataset.shape == (channels, 8, 8) and dataset.dim == channels * 64
    samples = dataset.sample(500, torch.Generator().manual_seed(0))
    assert samples.shape == (500, channels, 8, 8) and samples.dtype == torch.float32
    assert samples.min() >= -1 and samples.max() <= 1
    train_images, _ = split_digits("train")
    known = {image.numpy().tobytes() for image in train_images[:, 0]}
    assert all(image.numpy().tobytes() in known for image in samples.reshape(-1, 8, 8))


@pytest.mark.parametrize("name", list(CHANNELS))
def test_same_seed_same_samples(name):
    dataset = get_dataset(name)
    first = dataset.sample(64, torch.Generator().manual_seed(7))
    again = dataset.sample(64, torch.Generator().manual_seed(7))
    other = dataset.sample(64, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_mode_ids_are_base_10_over_channels():
    digits = torch.tensor([[1, 2, 3], [0, 0, 7], [9, 9, 9]])
    assert mode_ids(digits).tolist() == [123, 7, 999]
    assert mode_ids(torch.tensor([[4], [9]])).tolist() == [4, 9]
    assert mode_ids(torch.tensor([[1, 2, 3, 4], [0, 9, 0, 1]])).tolist() == [1234, 901]


@pytest.mark.parametrize(
    "name, places", [("stacked-digits", (100, 10, 1)), ("stacked-digits4", (1000, 100, 10, 1))]
)
def test_stacked_channels_show_the_digits_of_their_mode_id(name, places):
    dataset = get_dataset(name)
    images, modes = dataset.sample_with_modes(300, torch.Generator().manual_seed(1))
    assert modes.min() >= 0 and modes.max() < dataset.num_modes
    images_train, labels_train = split_digits("train")
    label_of = {
        image.numpy().tobytes(): int(label)
        for image, label in zip(images_train, labels_train, strict=True)
    }
    for image, mode in zip(images, modes.tolist(), strict=True):
        digits = [label_of[channel.numpy().tobytes()] for channel in image]
        assert sum(place * digit for place, digit in zip(places, digits, strict=True)) == mode


@pytest.mark.parametrize("name, n", [("stacked-digits", 100_000), ("stacked-digits4", 260_000)])
def test_stacked_modes_are_uniform_so_channels_are_independent(name, n):
    _, modes = get_dataset(name).sample_with_modes(n, torch.Generator().manual_seed(2))
    k = get_dataset(name).num_modes
    counts = torch.bincount(modes, minlength=k).double()
    assert len(counts) == k and counts.min() > 0
    expected = n / k
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < (k - 1) + 5 * (2 * (k - 1)) ** 0.5  # chi2(k - 1): mean k - 1


# --- the user's own data ---------------------------------------------------------------


def write_pngs(folder, arrays, mode=None):
    folder.mkdir(exist_ok=True)
    for index, array in enumerate(arrays):
        Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(folder / f"{index:03d}.png")
    return folder


def test_png_folder_of_grayscale_images(tmp_path):
    pixels = np.stack([np.full((6, 5), value) for value in (0, 255, 51)])
    data = load_user_data(write_pngs(tmp_path / "gray", pixels))
    assert data.shape == (3, 1, 6, 5) and data.dtype == torch.float32
    assert data[:, 0, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 51 / 127.5 - 1])


def test_png_folder_of_rgb_images(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3))
    data = load_user_data(write_pngs(tmp_path / "rgb", pixels))
    assert data.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(data[1].numpy(), pixels[1].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)


@pytest.mark.parametrize(
    "array, shape",
    [
        (np.ones((5, 2)), (5, 2)),
        (np.ones((5, 8, 8)), (5, 1, 8, 8)),
        (np.ones((5, 3, 8, 8)), (5, 3, 8, 8)),
    ],
)
def test_npy_arrays(tmp_path, array, shape):
    np.save(tmp_path / "data.npy", array)
    data = load_user_data(tmp_path / "data.npy")
    assert data.shape == shape and data.dtype == torch.float32


def test_npz_with_one_array_or_one_named_data(tmp_path):
    np.savez(tmp_path / "one.npz", points=np.arange(6.0).reshape(3, 2))
    assert load_user_data(tmp_path / "one.npz").tolist() == [[0, 1], [2, 3], [4, 5]]
    np.savez(tmp_path / "two.npz", data=np.ones((2, 2)), labels=np.zeros(2))
    assert load_user_data(tmp_path / "two.npz").shape == (2, 2)


@pytest.mark.parametrize("text", ["x,y\n1,2\n3,4\n", "1,2\n3,4\n\n"])
def test_csv_points_with_or_without_header(tmp_path, text):
    (tmp_path / "points.csv").write_text(text)
    assert load_user_data(tmp_path / "points.csv").tolist() == [[1, 2], [3, 4]]


def write_bad(tmp_path, kind):
    """A path to an unusable input of `kind`."""
    if kind == "empty-folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if kind == "mixed-sizes":
        write_pngs(tmp_path / "mixed", [np.zeros((8, 8))])
        Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "mixed" / "z.png")
        return tmp_path / "mixed"
    if kind == "mixed-channels":
        write_pngs(tmp_path / "channels", [np.zeros((8, 8))])
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "channels" / "z.png")
        return tmp_path / "channels"
    if kind == "not-a-png":
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
        return tmp_path / "broken"
    arrays = {
        "one-dim": np.ones(5),
        "five-dim": np.ones((2, 1, 1, 8, 8)),
        "nan": np.array([[0.0, 1.0], [np.nan, 2.0]]),
        "empty-array": np.ones((0, 2)),
        "strings": np.array([["a", "b"]]),
    }
    if kind in arrays:
        np.save(tmp_path / "bad.npy", arrays[kind])
        return tmp_path / "bad.npy"
    if kind == "ragged-npy":
        np.save(tmp_path / "bad.npy", np.array([[1.0], [1.0, 2.0]], dtype=object))
        return tmp_path / "bad.npy"
    if kind == "two-arrays":
        np.savez(tmp_path / "bad.npz", a=np.ones(2), b=np.ones(2))
        return tmp_path / "bad.npz"
    texts = {"ragged-csv": "1,2\n3\n", "words-csv": "1,2\nthree,4\n", "empty-csv": "x,y\n"}
    if kind in texts:
        (tmp_path / "bad.csv").write_text(texts[kind])
        return tmp_path / "bad.csv"
    if kind == "suffix":
        (tmp_path / "bad.txt").write_text("1,2\n")
        return tmp_path / "bad.txt"
    return tmp_path / "missing.npy"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty-folder", "no PNG images"),
        ("mixed-sizes", "mixed image sizes"),
        ("mixed-channels", "mixed image sizes: z.png is 8x8 with 3 channels"),
        ("not-a-png", "not a readable PNG"),
        ("one-dim", "got 1 dimension"),
        ("five-dim", "got 5 dimension"),
        ("nan", "NaN or infinite values"),
        ("empty-array", "empty data"),
        ("strings", "expected numbers"),
        ("ragged-npy", "ragged or object"),
        ("two-arrays", "expected one array"),
        ("ragged-csv", "ragged rows: line 2"),
        ("words-csv", "line 2 is not all numbers"),
        ("empty-csv", "empty data"),
        ("suffix", "unsupported format"),
        ("missing", "no such file or folder"),
    ],
)
def test_unusable_user_data_is_refused_with_a_clear_message(tmp_path, kind, message):
    with pytest.raises(ValueError, match=message):
        load_user_data(write_bad(tmp_path, kind))
