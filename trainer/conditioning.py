"""What the class-conditional recipes share, the GAN's (trainer/training_loop.py) and the score
model's (trainer/edm/): the classes' check, the labelled real batch, the labels an evaluation
draws and the card's `conditional` object. The contract itself (labels by seed, class modes,
the ONNX label input) is lab/conditioning.py's.
"""

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lab.conditioning import LABEL_INPUT, class_weights, drawn_labels
from trainer.datasets.registry import get_dataset
from trainer.distributed import local_rows


def check_class_split(dataset: str, classes: int, model: str) -> None:
    """ValueError unless `classes` (0: unconditional) are 2 or more classes that split the
    modes of `dataset` evenly (lab.conditioning.class_modes); `model` names the family in the
    message ("GAN", "score model")."""
    if not classes:
        return
    modes = get_dataset(dataset).num_modes
    if classes < 2 or modes % classes:
        raise ValueError(
            f"classes {classes}: a conditional {model} needs 2 or more classes that split "
            f"the {modes} modes of {dataset!r} evenly (0: unconditional)"
        )


def labelled_rows(
    dataset: Any, rng: torch.Generator, rows: int, classes: int, device: torch.device | str
) -> tuple[Tensor, Tensor | None]:
    """This rank's rows of a real batch [rows, ...] on the CPU (trainer.distributed.local_rows)
    and, for `classes` > 0, their labels [rows] int64 on `device` (each sample's mode's class:
    lab.conditioning.class_modes); labels None for classes 0, the data then drawn by
    dataset.sample (the unconditional stream, unchanged)."""
    if not classes:
        return local_rows(lambda n: dataset.sample(n, rng), rows), None
    real, modes = local_rows(lambda n: dataset.sample_with_modes(n, rng), rows)
    return real, (modes // (dataset.num_modes // classes)).to(device)


def data_class_weights(dataset: Any, classes: int) -> list[float]:
    """The dataset's class mix: each class's share of its reference's mode weights."""
    return class_weights(dataset.reference_spec()["weights"], classes)


def default_labels(dataset: Any, classes: int, n: int, seed: int) -> np.ndarray | None:
    """The labels int64 [n] the service draws for a request of (n, seed) that sets none (the
    data's class mix, lab.conditioning.drawn_labels); None for classes 0."""
    if not classes:
        return None
    return drawn_labels(data_class_weights(dataset, classes), n, seed)


def conditional_card(dataset: str, classes: int) -> dict[str, Any]:
    """The card's `conditional` object of a model of `classes` classes trained on `dataset` (its
    classes, the data's class mix, the labels input) as {"conditional": ...}; {} for 0."""
    if not classes:
        return {}
    weights = data_class_weights(get_dataset(dataset), classes)
    return {"conditional": {"classes": classes, "weights": weights, "input": LABEL_INPUT}}


def every_class(n: int, classes: int) -> np.ndarray | None:
    """The labels 0, 1, .., K-1, 0, 1, .. int64 [n]: every class, for export and parity checks;
    None for classes 0."""
    return np.arange(n, dtype=np.int64) % classes if classes else None
