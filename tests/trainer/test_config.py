"""Config resolution: defaults < preset < overrides; unknown keys and bad values fail."""

import json

import pytest

from trainer.config import TrainConfig, resolve_config
from trainer.settings import preset_names


def test_bundled_presets_exist():
    assert {"ring8-gan", "grid25-gan"} <= set(preset_names())


@pytest.mark.parametrize("preset, dataset", [("ring8-gan", "ring8"), ("grid25-gan", "grid25")])
def test_presets_resolve_over_the_defaults(preset, dataset):
    config = resolve_config(preset)
    assert config.dataset == dataset
    assert config.loss == "non-saturating"
    assert config.eval_samples == TrainConfig().eval_samples


def test_overrides_beat_the_preset():
    config = resolve_config("ring8-gan", {"steps": 7, "seed": 3, "lr_g": None})
    assert (config.steps, config.seed) == (7, 3)
    assert config.lr_g == resolve_config("ring8-gan").lr_g


def test_a_json_file_works_as_a_preset(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"dataset": "grid25", "lr_d": 1}))
    config = resolve_config(str(path))
    assert config.dataset == "grid25" and config.lr_d == 1


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"stepz": 10}, "unknown config keys"),
        ({"steps": "10"}, "steps must be int"),
        ({"steps": True}, "steps must be int"),
    ],
)
def test_bad_preset_keys_fail(tmp_path, fields, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(fields))
    with pytest.raises(ValueError, match=message):
        resolve_config(str(path))


def test_unknown_preset_fails():
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        resolve_config("nope")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"steps": -1}, "steps must be >= 0"),
        ({"dataset": "ring9"}, "unknown dataset 'ring9'"),
        ({"loss": "hinge-ish"}, "unknown loss"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"beta2": 1.0}, r"beta2 must be in \[0, 1\)"),
        ({"lr_g": 0.0}, "lr_g must be > 0"),
    ],
)
def test_bad_values_fail(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)
