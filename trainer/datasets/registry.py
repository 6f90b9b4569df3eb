"""The dataset registry: short names -> dataset builders, filled by the member modules
(mixtures.py, images.py), which the package face imports; this module imports none of them."""

from collections.abc import Callable
from typing import Any

from trainer.registry import Registry

DATASETS: Registry[Callable[[], Any]] = Registry("dataset")  # name -> () -> dataset
# registered by images.py (8x8, and MNIST's 28x28); the rest are points
IMAGE_DATASETS = ("digits", "stacked-digits", "stacked-digits4", "mnist", "stacked-mnist")
# 28x28 (images.py): the DCGAN and the conv VAE are built for any side they are given; the score
# U-Net (trainer/nets/edm_unet.py) for 8x8 only.
MNIST_DATASETS = ("mnist", "stacked-mnist")


def get_dataset(name: str) -> Any:
    """Build the registered dataset `name`: a GaussianMixture (points [n, dim]) or an
    ImageDataset (images [n, C, S, S], S = 8 or 28); KeyError listing the known names otherwise."""
    return DATASETS.get(name)()


def check_score_dataset(name: str) -> None:
    """ValueError when `name` is a dataset that the score models' nets cannot take."""
    if name in MNIST_DATASETS:
        raise ValueError(
            f"dataset {name!r} is 28x28 MNIST; the score U-Net takes the 8x8 images "
            f"({', '.join(d for d in IMAGE_DATASETS if d not in MNIST_DATASETS)}) or points. "
            "Train a GAN ('dcgan') or a VAE ('conv') on it instead"
        )
