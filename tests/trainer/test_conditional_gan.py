"""The class-conditional GAN's projection D: its class embedding's init (projection_init)."""

import math

import pytest
import torch

from trainer.config import TrainConfig
from trainer.training_loop import build

TINY = {"g_hidden": 32, "g_depth": 2, "d_hidden": 32, "d_depth": 2, "batch_size": 64}


def conditional(**fields) -> TrainConfig:
    return TrainConfig(dataset="ring8", classes=8, **TINY, **fields)


def test_glorot_draws_the_class_embedding_within_its_bound_and_nothing_else_changes():
    normal, glorot = build(conditional()), build(conditional(projection_init="glorot"))
    weight = glorot.discriminator.embedding.weight
    bound = math.sqrt(6.0 / (8 + 32))  # K classes + phi's width (d_hidden)
    assert weight.abs().max().item() <= bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)
    assert normal.discriminator.embedding.weight.std().item() == pytest.approx(1.0, rel=0.15)
    for net in ("generator", "discriminator"):
        old, new = getattr(normal, net).state_dict(), getattr(glorot, net).state_dict()
        for name in old:
            if name != "embedding.weight" or net == "generator":
                torch.testing.assert_close(new[name], old[name], msg=f"{net}.{name}")


def test_glorot_starts_the_projection_near_the_unconditional_heads_scale():
    def scales(config: TrainConfig) -> tuple[float, float]:
        discriminator = build(config).discriminator
        x, labels = torch.randn(256, 2), torch.randint(8, (256,))
        phi = discriminator.features(x)
        head = discriminator.base.head(discriminator.base.batch_layers(phi)).squeeze(-1)
        projection = (discriminator.embedding(labels) * phi).sum(dim=-1)
        return projection.std().item(), head.std().item()

    default_width = {"dataset": "ring8", "classes": 8}  # phi 200 wide, as the ring8 presets
    normal, head = scales(TrainConfig(**default_width))
    glorot, _ = scales(TrainConfig(**default_width, projection_init="glorot"))
    assert normal > 10 * head and glorot < 10 * head and glorot < normal / 4


def test_glorot_reaches_the_raw_weight_under_spectral_norm():
    config = conditional(projection_init="glorot", mitigations=("spectral-norm",))
    embedding = build(config).discriminator.embedding
    raw = embedding.parametrizations.weight.original
    assert raw.abs().max().item() <= math.sqrt(6.0 / (8 + 32))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"classes": 8, "projection_init": "orthogonal"}, "unknown projection_init 'orthogonal'"),
        ({"projection_init": "glorot"}, "set classes > 0"),
    ],
)
def test_bad_projection_inits_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(dataset="ring8", **fields)
