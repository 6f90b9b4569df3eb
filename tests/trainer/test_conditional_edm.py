"""Class-conditional score models in the trainer: the classes' check, the class embedding (and
none for an unconditional network, whose runs stay as they were), labels drawn with the data,
resume of older checkpoints, evaluation per class, and the export of a conditional U-Net."""

import json
import shutil

import numpy as np
import pytest
import torch

from trainer.conditioning import labelled_rows
from trainer.datasets import get_dataset
from trainer.edm.config import ScoreConfig, resolve_score_config
from trainer.edm.export import export_score
from trainer.edm.training_loop import build, score_training_loop

TINY = {"width": 16, "depth": 1, "sigma_max": 10.0, "batch_size": 64, "snapshot_every": 10}
# A 20-step unconditional run's numbers (sum of |EMA weights|, sum of |4 samples| of seed 3 in
# 4 Heun steps), measured with the code from before score models could be conditional: adding
# the conditioning must leave unconditional runs as they were (same initialisation, same data
# and noise streams). Those runs were bit-identical on the machine that measured them; the
# tolerance only allows another CPU's last-bit differences.
UNCONDITIONAL = {
    "grid25": ({"input_frequencies": 2}, 246.36152860150753, 35.44069319963455),
    "digits": ({"arch": "unet", "width": 8}, 1799.7438285611158, 198.15273408638313),
}


@pytest.mark.parametrize("dataset", list(UNCONDITIONAL))
def test_unconditional_runs_are_unchanged(tmp_path, dataset):
    extra, weights, samples = UNCONDITIONAL[dataset]
    config = ScoreConfig(dataset=dataset, steps=20, **{**TINY, **extra})
    state = score_training_loop(config, tmp_path, resume=False, progress=False)
    measured = sum(float(t.double().abs().sum()) for t in state.ema.state_dict().values())
    assert measured == pytest.approx(weights, rel=1e-6)
    assert float(np.abs(state.samples(4, 3, 4).astype(np.float64)).sum()) == pytest.approx(
        samples, rel=1e-5
    )
    assert "classes" not in state.architecture["args"]
    assert not any("label" in key for key in state.ema.state_dict())


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"dataset": "ring8", "classes": 3}, "split the 8 modes of 'ring8'"),
        ({"dataset": "ring8", "classes": 1}, "2 or more classes"),
        ({"dataset": "ring8", "classes": -1}, "classes must be >= 0"),
        ({"dataset": "digits", "arch": "unet", "classes": 4}, "split the 10 modes of 'digits'"),
    ],
)
def test_classes_that_do_not_split_the_modes_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        ScoreConfig(**fields)


@pytest.mark.parametrize(
    "preset, classes",
    [("digits-edm-conditional", 10), ("stacked-digits-edm-conditional", 10)],
)
def test_the_conditional_presets_are_the_unconditional_recipes_with_classes(preset, classes):
    config = resolve_score_config(preset)
    unconditional = resolve_score_config(preset.removesuffix("-conditional"))
    assert config.classes == classes
    assert {**config.to_dict(), "classes": 0} == unconditional.to_dict()


def test_a_conditional_network_adds_a_class_embedding_to_the_noise_embedding():
    state = build(ScoreConfig(dataset="ring8", classes=4, **TINY))
    assert state.architecture["args"]["classes"] == 4
    table = state.denoiser.network.embedding.label.weight
    assert table.shape == (4, 32)  # one vector per class, the width of the sin/cos features
    with torch.no_grad():  # the head starts at 0 (D = c_skip x): give it weights to see F
        torch.nn.init.normal_(state.denoiser.network.head[-1].weight)
        x, sigma = torch.randn(4, 2), torch.full((4,), 0.5)
        outputs = [state.denoiser(x, sigma, torch.full((4,), k)) for k in range(4)]
    assert all(not torch.equal(outputs[0], other) for other in outputs[1:])


def test_labels_are_drawn_with_the_data_and_are_each_samples_class():
    dataset = get_dataset("ring8")
    points, labels = labelled_rows(dataset, torch.Generator().manual_seed(5), 500, 4, "cpu")
    unconditional, none = labelled_rows(dataset, torch.Generator().manual_seed(5), 500, 0, "cpu")
    assert none is None and torch.equal(points, unconditional)  # the same data stream
    nearest = torch.cdist(points.double(), dataset.centres.double()).argmin(dim=1)
    assert torch.equal(labels, nearest // 2)  # class k holds modes 2k and 2k + 1
    assert set(labels.tolist()) == {0, 1, 2, 3}


def test_a_checkpoint_written_before_classes_existed_resumes(tmp_path):
    config = ScoreConfig(dataset="ring8", steps=20, lr_schedule="constant", **TINY)
    score_training_loop(ScoreConfig(**{**config.to_dict(), "steps": 10}), tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["config"]["classes"]
    torch.save(checkpoint, path)
    assert score_training_loop(config, tmp_path, progress=False).step == 20


def test_a_conditional_run_is_evaluated_per_class(tmp_path):
    config = ScoreConfig(dataset="ring8", classes=4, steps=4, **TINY)
    state = score_training_loop(config, tmp_path, progress=False)
    numbers = state.evaluate(n=200, steps=3)
    assert 0 <= numbers["classes_healthy"] <= 4
    labels = np.zeros(6, np.int64)
    assert not np.array_equal(state.samples(6, 0, 3), state.samples(6, 0, 3, labels))


@pytest.mark.slow  # ~85 s on a busy 2-core CPU: U-Net trajectories, parities, the classifier report
def test_a_conditional_unet_exports_with_the_classes_section(tmp_path, card_validator):
    """A tiny conditional U-Net on digits: the denoiser, fused and step graphs take labels,
    their parities hold, and the card's diagnostics judge each digit on its own mode."""
    from service.config import REPO_MODELS

    models_dir = tmp_path / "models"
    for name in ("digits", "digit-classifier"):  # the reference and the classifier it names
        shutil.copytree(REPO_MODELS / name, models_dir / name)
    overrides = {"steps": 2, "width": 8, "snapshot_every": 1}
    config = resolve_score_config("digits-edm-conditional", overrides)
    score_training_loop(config, tmp_path / "run", progress=False)
    card = json.loads(export_score(tmp_path / "run", models_dir, "digits-tiny").read_text())
    card_validator.validate(card)
    conditional = card["conditional"]
    assert conditional["classes"] == 10 and conditional["weights"] == pytest.approx([0.1] * 10)
    assert card["architecture"]["args"] == {"channels": 1, "width": 8, "classes": 10}
    version = card["versions"][0]
    assert version["parity"]["trajectory"]["max_abs_error"] <= 1e-3
    assert version["fused"]["parity"]["max_abs_error"] <= 1e-5
    assert version["step_graphs"]["parity"]["max_abs_error"] <= 1e-4
    section = card["diagnostics"]["classes"]
    assert section["count"] == 10 and sum(entry["n"] for entry in section["per_class"]) == 2500
