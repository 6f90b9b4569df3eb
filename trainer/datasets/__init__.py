"""Datasets by short name: the 2-D Gaussian mixtures (mixtures.py) and the digit images
(images.py: 8x8 digits, 28x28 MNIST read by mnist.py). Importing the package registers both
families in DATASETS (registry.py)."""

from trainer.datasets.images import ImageDataset
from trainer.datasets.mixtures import GaussianMixture
from trainer.datasets.registry import DATASETS, IMAGE_DATASETS, get_dataset

__all__ = ["DATASETS", "IMAGE_DATASETS", "GaussianMixture", "ImageDataset", "get_dataset"]
