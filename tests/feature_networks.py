"""Tiny torch networks a user might bring (images -> class scores, embeddings, features),
importable as `tests.feature_networks:ClassName` by `python -m trainer export-classifier`, and
a helper exporting them into a model repository."""

from pathlib import Path

import torch
from torch import Tensor, nn

from trainer.feature_export import FeatureExport, export_feature_model


class TinyClassifier(nn.Module):
    """images [batch, channels, 6, 6] -> (logits [batch, classes], embedding [batch, width])."""

    def __init__(self, channels: int = 1, classes: int = 4, width: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 3, 3), nn.Flatten(), nn.Linear(48, width))
        self.head = nn.Linear(width, classes)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        embedding = torch.tanh(self.body(images))
        return self.head(embedding), embedding


class TinyEmbedding(nn.Module):
    """images [batch, channels, 6, 6] -> features [batch, dim]."""

    def __init__(self, channels: int = 1, dim: int = 7) -> None:
        super().__init__()
        self.layer = nn.Linear(channels * 36, dim)

    def forward(self, images: Tensor) -> Tensor:
        return self.layer(images.flatten(1))


class TinyProbabilities(TinyClassifier):
    """Class probabilities (softmax already applied) and no embedding."""

    def forward(self, images: Tensor) -> Tensor:
        return torch.softmax(super().forward(images)[0], dim=1)


class NoisyClassifier(TinyClassifier):
    """Random even in eval mode: torch and onnxruntime cannot agree."""

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        logits, embedding = super().forward(images)
        return logits + torch.rand_like(logits), embedding


def save_weights(network: nn.Module, folder: Path, seed: int = 0) -> Path:
    """network's state_dict (initialised from `seed`) saved as folder/<class>-<seed>.pt."""
    torch.manual_seed(seed)
    for parameter in network.parameters():
        nn.init.normal_(parameter, std=0.5)
    path = folder / f"{type(network).__name__}-{seed}.pt"
    torch.save(network.state_dict(), path)
    return path


def export_tiny(
    models_dir: Path, kind: str, name: str, seed: int = 0, threshold: float = 0.3
) -> Path:
    """Export TinyClassifier (4 classes, embedding output, confident at `threshold`) or
    TinyEmbedding (7 features), for 1-channel 6x6 images in [0, 1]; the card's path."""
    network = TinyClassifier() if kind == "classifier" else TinyEmbedding()
    weights = save_weights(network, Path(models_dir).parent, seed)
    common = {
        "state_dict": weights,
        "input_shape": (1, 6, 6),
        "value_range": (0.0, 1.0),
        "name": name,
        "models_dir": Path(models_dir),
    }
    if kind == "classifier":
        module = "tests.feature_networks:TinyClassifier"
        request = FeatureExport(
            module, n_classes=4, embedding_output="embedding", threshold=threshold, **common
        )
    else:
        request = FeatureExport("tests.feature_networks:TinyEmbedding", **common)
    return export_feature_model(request)
