"""The digit classifier that counts modes of the image benchmarks: a `classifier` model
(models/digit-classifier) and the two `reference` cards that name it.

A small CNN trained on the training split of the 8x8 digits
(trainer.datasets.images.digits_split) with a fixed seed and +-1 pixel random shifts, scored on
the held-out split no GAN ever trains on.
Its ONNX file has one input, `images` [batch, 1, 8, 8] float32 in [-1, 1], and two outputs:
`logits` [batch, 10] (the mode of a digit is their argmax) and `embedding` [batch, E] (the
penultimate layer, the feature space of the k-NN metrics).

The one classifier serves both references (trainer.classifier_references): `digits` (1
channel, 10 modes) and `stacked-digits` (3 channels, 1000 modes: each channel is classified as
its own [1, 8, 8] image and the mode id is 100*d_R + 10*d_G + d_B, as in Stacked MNIST); each
reference keeps its real samples' features.
"""

import dataclasses
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lab.cards import newest_version, read_card
from trainer.classifier_references import classifier_model_card, write_classifier_reference
from trainer.datasets import get_dataset
from trainer.datasets.images import (
    HELD_OUT_FRACTION,
    SPLIT_SEED,
    VALUE_RANGE,
    load_digit_images,
    split_digits,
)
from trainer.onnx_export import (
    EXPORT_BATCH,
    PARITY_TOLERANCE,
    export_model,
    module_to_onnx,
    save_version,
)

CLASSIFIER_NAME = "digit-classifier"  # the classifier model both references name
REFERENCE_DATASETS = ("digits", "stacked-digits")
REFERENCE_FEATURES = 5_000  # real samples whose embeddings the k-NN metrics compare against
REFERENCE_FEATURES_SEED = 0
OUTPUT_NAMES = ("logits", "embedding")


@dataclass(frozen=True)
class ClassifierConfig:
    """Training recipe of the reference classifier (AdamW, cosine learning-rate decay)."""

    steps: int = 2000  # optimiser steps (~90 epochs of the 1,437 training digits)
    batch_size: int = 64
    lr: float = 2e-3  # peak learning rate, cosine-decayed to 0
    weight_decay: float = 1e-4
    width: int = 32  # channels of the first conv layers
    embedding_dim: int = 64  # E, the size of the `embedding` output
    max_shift: int = 1  # augmentation: random translation by up to this many pixels
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "width", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("weight_decay", "max_shift", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_shift > 3:
            raise ValueError(f"max_shift must be <= 3 (8x8 images), got {self.max_shift}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DigitClassifier(nn.Module):
    """images [batch, 1, 8, 8] float32 in [-1, 1] -> (logits [batch, 10], embedding [batch, E])."""

    def __init__(self, width: int = 32, embedding_dim: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
            nn.Linear(2 * width * 4, embedding_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(embedding_dim, 10))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        embedding = self.features(images)
        return self.head(embedding), embedding


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image [n, 1, 8, 8] by up to max_shift pixels per axis, background -1."""
    if max_shift == 0:
        return images
    size = images.shape[-1]
    padded = F.pad(images, [max_shift] * 4, value=-1.0)
    offsets = torch.randint(2 * max_shift + 1, (images.shape[0], 2), generator=generator)
    rows = (offsets[:, :1] + torch.arange(size))[:, :, None]  # [n, size, 1]
    cols = (offsets[:, 1:] + torch.arange(size))[:, None, :]  # [n, 1, size]
    batch = torch.arange(images.shape[0])[:, None, None]
    return padded[:, 0][batch, rows, cols].unsqueeze(1)


def train_classifier(config: ClassifierConfig) -> DigitClassifier:
    """The classifier trained on the training split, in eval mode; deterministic per seed."""
    images, labels = split_digits("train")
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng():  # seeded initialisation without touching the global RNG
        torch.manual_seed(config.seed)
        model = DigitClassifier(config.width, config.embedding_dim)
    optimiser = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)
    model.train()
    for step in range(config.steps):
        for group in optimiser.param_groups:  # cosine decay to 0
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        batch = torch.randint(len(labels), (config.batch_size,), generator=generator)
        inputs = random_shift(images[batch], config.max_shift, generator)
        with torch.random.fork_rng():  # dropout draws from a seeded stream too
            torch.manual_seed(config.seed * 1_000_003 + step)
            logits, _ = model(inputs)
        loss = F.cross_entropy(logits, labels[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return model.eval()


def held_out_accuracy(model: nn.Module) -> float:
    """Fraction of the 360 held-out digits whose argmax logit is the true digit."""
    images, labels = split_digits("held_out")
    with torch.no_grad():
        logits, _ = model(images)
    return int((logits.argmax(dim=1) == labels).sum()) / len(labels)


def classifier_to_onnx(model: nn.Module) -> onnx.ModelProto:
    """The classifier -> ONNX: images [batch, 1, 8, 8] -> logits, embedding."""
    images = torch.zeros(EXPORT_BATCH, 1, 8, 8)
    return module_to_onnx(model, images, "images", list(OUTPUT_NAMES))


def run_classifier_onnx(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ONNX file on the CPU provider: images [n, 1, 8, 8] -> (logits, embedding) float32."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, embedding = session.run(list(OUTPUT_NAMES), {"images": images})
    return logits, embedding


def measure_classifier_parity(model: nn.Module, path: Path) -> dict[str, Any]:
    """torch vs onnxruntime on all 1,797 digits, both outputs; RuntimeError above tolerance."""
    images, _ = load_digit_images()
    with torch.no_grad():
        expected = [output.numpy().astype(np.float64) for output in model(images)]
    actual = [output.astype(np.float64) for output in run_classifier_onnx(path, images.numpy())]
    errors = [np.abs(e - a) for e, a in zip(expected, actual, strict=True)]
    relative = [err / np.maximum(np.abs(e), 1e-3) for err, e in zip(errors, expected, strict=True)]
    parity = {
        "max_abs_error": float(max(err.max() for err in errors)),
        "max_rel_error": float(max(rel.max() for rel in relative)),
        "n_inputs": int(images.shape[0]),
    }
    if not parity["max_abs_error"] <= PARITY_TOLERANCE:  # also catches NaN
        raise RuntimeError(f"ONNX parity failed: {parity} (tolerance {PARITY_TOLERANCE})")
    return parity


def classifier_card(
    entry: dict[str, Any], versions: list[dict], accuracy: float, config: ClassifierConfig
) -> dict[str, Any]:
    """The card of the digit classifier model (kind classifier) listing `versions`."""
    logits = {"name": "logits", "dtype": "float32", "shape": [-1, 10], "scores": "logits"}
    embedding = {"name": "embedding", "dtype": "float32", "shape": [-1, config.embedding_dim]}
    tensors = {
        "input": {"name": "images", "dtype": "float32", "shape": [-1, 1, 8, 8]},
        "value_range": list(VALUE_RANGE),
        "output": logits,
        "embedding_output": embedding,
        "n_classes": 10,
    }
    held_out = {
        "accuracy": accuracy,
        "n": len(split_digits("held_out")[1]),
        "fraction": HELD_OUT_FRACTION,
        "seed": SPLIT_SEED,
        "stratified": True,
    }
    extra = {
        "classes": [str(digit) for digit in range(10)],
        "held_out": held_out,
        "dataset": "digits",
        "architecture": {"name": "DigitClassifier", "width": config.width},
        "training": config.to_dict(),
    }
    description = (
        f"8x8 digit classifier (version {entry['version']}): {accuracy:.2%} held-out accuracy; "
        "counts the modes of digits and stacked-digits."
    )
    return classifier_model_card(CLASSIFIER_NAME, description, tensors, versions, extra)


def export_digit_classifier(model: nn.Module, models_dir: Path, config: ClassifierConfig) -> Path:
    """Add the classifier as the next version of models_dir/digit-classifier (parity checked);
    the card's path."""
    proto = classifier_to_onnx(model)
    accuracy = held_out_accuracy(model)

    def write_version(version_dir: Path, version: int) -> dict[str, Any]:
        return save_version(proto, version_dir, version, partial(measure_classifier_parity, model))

    def make_card(_: Path, entry: dict[str, Any], versions: list[dict]) -> dict[str, Any]:
        return classifier_card(entry, versions, accuracy, config)

    return export_model(models_dir, CLASSIFIER_NAME, "classifier", None, write_version, make_card)


def reference_modes(dataset_name: str) -> dict[str, Any]:
    """The reference's modes: channels, n_modes, weights and how outputs become mode ids."""
    spec = get_dataset(dataset_name).reference_spec()
    channels = spec["channels"]
    apply = (
        "argmax of logits is the digit"
        if channels == 1
        else f"classify each of the {channels} channels as its own [batch, 1, 8, 8] image; "
        "mode id = 100 * digit_R + 10 * digit_G + digit_B"
    )
    return {key: spec[key] for key in ("channels", "n_modes", "weights")} | {"apply": apply}


def reference_features(dataset_name: str, path: Path) -> np.ndarray:
    """Embeddings of real samples of the dataset, [n, C * E] float32.

    digits: each training digit once (resampling would put exact duplicates in the reference
    and shrink its k-NN radii to 0); stacked digits: REFERENCE_FEATURES triples drawn with a
    fixed seed. Each channel is embedded by the exported classifier (the service's own path),
    channel embeddings side by side.
    """
    dataset = get_dataset(dataset_name)
    if dataset.channels == 1:
        images = dataset.images.numpy()  # [n, 1, 8, 8]
    else:
        generator = torch.Generator().manual_seed(REFERENCE_FEATURES_SEED)
        images = dataset.sample(REFERENCE_FEATURES, generator).numpy()  # [n, C, 8, 8]
    n, channels = images.shape[:2]
    _, embedding = run_classifier_onnx(path, images.reshape(n * channels, 1, 8, 8))
    return embedding.reshape(n, -1)


def export_classifier_references(
    model: nn.Module, models_dir: Path, config: ClassifierConfig
) -> list[Path]:
    """Write the classifier (the next version of models_dir/digit-classifier) and the digits
    and stacked-digits references naming it, each with 1/features.npy.

    ValueError when a reference folder already holds a card or a version (nothing written);
    RuntimeError when parity fails (nothing left behind). Returns the card paths, the
    classifier's first.
    """
    for name in REFERENCE_DATASETS:
        reference_dir = Path(models_dir) / name
        if (reference_dir / "1").exists() or (reference_dir / "card.json").exists():
            raise ValueError(f"{reference_dir} already holds a reference; remove it first")
    classifier_path = export_digit_classifier(model, models_dir, config)
    classifier = read_card(classifier_path.parent)
    onnx_path = classifier_path.parent / newest_version(classifier)["file"]
    accuracy = classifier["held_out"]["accuracy"]
    cards = [classifier_path]
    for name in REFERENCE_DATASETS:
        features = reference_features(name, onnx_path)
        modes = reference_modes(name)
        description = (
            f"Digit classifier reference for {name} ({modes['n_modes']} modes, uniform): "
            f"{accuracy:.2%} held-out accuracy on the 8x8 digits."
        )
        extra = {"seed": REFERENCE_FEATURES_SEED}
        cards.append(
            write_classifier_reference(
                models_dir, name, name, description, classifier, modes, (features, extra)
            )
        )
    return cards


def build_classifier_references(models_dir: Path, config: ClassifierConfig) -> dict[str, Any]:
    """Train, score and export; returns {"cards", "held_out_accuracy", "train_seconds"}."""
    start = time.perf_counter()
    model = train_classifier(config)
    seconds = time.perf_counter() - start
    cards = export_classifier_references(model, models_dir, config)
    return {"cards": cards, "held_out_accuracy": held_out_accuracy(model), "train_seconds": seconds}
