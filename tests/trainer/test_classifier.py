"""The digit classifier reference: ONNX outputs match torch, the cards validate, the CLI."""

import hashlib
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from lab.cards import load_classifier_reference
from trainer.classifier import (
    ClassifierConfig,
    DigitClassifier,
    export_classifier_references,
    held_out_accuracy,
    random_shift,
    train_classifier,
)
from trainer.cli import main
from trainer.datasets.images import split_digits

TINY = ClassifierConfig(steps=5, batch_size=16, width=8, embedding_dim=12)


@pytest.fixture(scope="module")
def tiny_model() -> DigitClassifier:
    return train_classifier(TINY)


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    """(models_dir, {name: card}) after exporting the tiny classifier's references."""
    models_dir = tmp_path_factory.mktemp("models")
    paths = export_classifier_references(tiny_model, models_dir, TINY)
    return models_dir, {path.parent.name: json.loads(path.read_text()) for path in paths}


def test_training_is_deterministic_per_seed(tiny_model):
    again = train_classifier(TINY)
    expected = tiny_model.state_dict()
    assert all(torch.equal(expected[key], value) for key, value in again.state_dict().items())


def test_random_shift_moves_images_by_at_most_one_pixel():
    images, _ = split_digits("train")
    shifted = random_shift(images[:200], 1, torch.Generator().manual_seed(0))
    assert shifted.shape == (200, 1, 8, 8)
    assert not torch.equal(shifted, images[:200])
    padded = torch.nn.functional.pad(images[:200], [1] * 4, value=-1.0)
    candidates = [padded[..., r : r + 8, c : c + 8] for r in range(3) for c in range(3)]
    assert all(any(torch.equal(s, c[i]) for c in candidates) for i, s in enumerate(shifted))


@pytest.mark.parametrize("field, value", [("steps", 0), ("lr", 0.0), ("max_shift", 4)])
def test_bad_config_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        ClassifierConfig(**{field: value})


def test_classifier_card_validates_and_names_its_file(exported, tiny_model, card_validator):
    models_dir, cards = exported
    card = cards["digit-classifier"]
    card_validator.validate(card)
    assert card["kind"] == "classifier" and card["n_classes"] == 10
    assert card["held_out"]["accuracy"] == held_out_accuracy(tiny_model)
    (version,) = card["versions"]
    path = models_dir / "digit-classifier" / version["file"]
    assert version["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert version["opset"] == 18 and version["ir_version"] == onnx.load(path).ir_version <= 10
    assert version["parity"]["max_abs_error"] <= 1e-4


@pytest.mark.parametrize("name", ["digits", "stacked-digits"])
def test_reference_cards_name_the_classifier(exported, card_validator, name):
    models_dir, cards = exported
    card = cards[name]
    card_validator.validate(card)
    reference = card["reference"]
    assert card["kind"] == "reference" and card["dataset"] == name
    assert (reference["channels"], reference["n_modes"]) == {
        "digits": (1, 10),
        "stacked-digits": (3, 1000),
    }[name]
    assert (reference["classifier"], reference["classifier_version"]) == ("digit-classifier", 1)
    assert not list((models_dir / name).rglob("*.onnx"))
    loaded = load_classifier_reference(models_dir / name, "cpu")
    assert loaded.features.shape == (reference["features"]["n"], reference["channels"] * 12)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_outputs_match_torch(exported, tiny_model, batch):
    models_dir, cards = exported
    path = models_dir / "digit-classifier" / cards["digit-classifier"]["versions"][0]["file"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = split_digits("held_out")[0][:batch]
    logits, embedding = session.run(["logits", "embedding"], {"images": images.numpy()})
    assert logits.shape == (batch, 10) and embedding.shape == (batch, TINY.embedding_dim)
    with torch.no_grad():
        expected_logits, expected_embedding = tiny_model(images)
    np.testing.assert_allclose(logits, expected_logits.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(embedding, expected_embedding.numpy(), atol=1e-4, rtol=0)


def test_an_existing_reference_is_not_overwritten(tiny_model, tmp_path):
    (tmp_path / "stacked-digits" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match="already holds a reference"):
        export_classifier_references(tiny_model, tmp_path, TINY)
    assert not (tmp_path / "digits").exists() and not (tmp_path / "digit-classifier").exists()


def run_main(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_dry_run_prints_the_config(capsys, tmp_path):
    argv = ["classifier", "--models-dir", str(tmp_path), "--steps", "7", "--dry-run"]
    status, out, _ = run_main(argv, capsys)
    assert status == 0 and json.loads(out)["steps"] == 7
    assert not any(tmp_path.iterdir())


def test_cli_writes_both_references(capsys, tmp_path, card_validator):
    status, out, _ = run_main(["classifier", "--models-dir", str(tmp_path), "--steps", "3"], capsys)
    assert status == 0 and "held-out accuracy" in out
    for name in ("digit-classifier", "digits", "stacked-digits"):
        card_validator.validate(json.loads((tmp_path / name / "card.json").read_text()))
    status, _, err = run_main(["classifier", "--models-dir", str(tmp_path), "--steps", "3"], capsys)
    assert status == 2 and "already holds a reference" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["classifier", "--steps", "0"], "must be >= 1"),
        (["classifier", "--seed", "-1"], "seed must be >= 0"),
        (["reference", "digits"], "image dataset"),
    ],
)
def test_cli_usage_errors(capsys, argv, message):
    status, _, err = run_main(argv, capsys)
    assert status == 2 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_full_recipe_reaches_98_percent_held_out():
    assert held_out_accuracy(train_classifier(ClassifierConfig())) >= 0.98
