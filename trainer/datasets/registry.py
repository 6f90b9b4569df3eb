"""The dataset registry: short names -> dataset builders, filled by the member modules
(mixtures.py, images.py), which the package face imports; this module imports none of them."""

from collections.abc import Callable
from typing import Any

from trainer.registry import Registry

DATASETS: Registry[Callable[[], Any]] = Registry("dataset")  # name -> () -> dataset
# 8x8, registered by images.py; the rest are points
IMAGE_DATASETS = ("digits", "stacked-digits", "stacked-digits4")
# 28x28 MNIST (images.py): only the classifier references train on it; the generators' nets are
# built for 8x8 images or points.
REFERENCE_ONLY_DATASETS = ("mnist", "stacked-mnist")


def get_dataset(name: str) -> Any:
    """Build the registered dataset `name`: a GaussianMixture (points [n, dim]) or an
    ImageDataset (images [n, C, S, S], S = 8 or 28); KeyError listing the known names otherwise."""
    return DATASETS.get(name)()


def check_generator_dataset(name: str) -> None:
    """ValueError when `name` is a dataset that no generator or score model trains on."""
    if name in REFERENCE_ONLY_DATASETS:
        raise ValueError(
            f"dataset {name!r} (28x28 MNIST) only trains the classifier reference "
            "(python -m trainer classifier --dataset mnist); the generators train on the points "
            f"or the 8x8 images ({', '.join(IMAGE_DATASETS)})"
        )
