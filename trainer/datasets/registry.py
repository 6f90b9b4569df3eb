"""The dataset registry: short names -> dataset builders, filled by the member modules
(mixtures.py, images.py), which the package face imports; this module imports none of them."""

from collections.abc import Callable
from typing import Any

from trainer.registry import Registry

DATASETS: Registry[Callable[[], Any]] = Registry("dataset")  # name -> () -> dataset
IMAGE_DATASETS = ("digits", "stacked-digits")  # registered by images.py; the rest are points


def get_dataset(name: str) -> Any:
    """Build the registered dataset `name`: a GaussianMixture (points [n, dim]) or an
    ImageDataset (images [n, C, 8, 8]); KeyError listing the known names otherwise."""
    return DATASETS.get(name)()
