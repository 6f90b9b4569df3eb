"""export-classifier / export-embedding (a user's torch network + state_dict -> a model of the
repository) and migrate-reference (an old-layout classifier reference -> classifier + reference)."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from lab.cards import load_classifier_reference, sha256
from service.config import REPO_MODELS
from service.repository import Repository
from tests.feature_networks import TinyClassifier, TinyEmbedding, save_weights
from tests.helpers import run_main

CLASSIFIER = "tests.feature_networks:TinyClassifier"
EMBEDDING = "tests.feature_networks:TinyEmbedding"


def export_argv(tmp_path: Path, weights: Path, *extra: str, module: str = CLASSIFIER) -> list:
    command = "export-classifier" if module != EMBEDDING else "export-embedding"
    argv = [command, "--module", module, "--state-dict", str(weights), "--input-shape", "1,6,6"]
    argv += ["--value-range", "0,1", "--models-dir", str(tmp_path / "models")]
    argv += ["--name", "mine", *extra]
    if command == "export-classifier" and "--classes" not in extra:
        argv += ["--classes", "4"]
    return argv


def test_classifier_export_writes_a_valid_card_and_matching_onnx(tmp_path, capsys, card_validator):
    network = TinyClassifier()
    weights = save_weights(network, tmp_path)
    argv = export_argv(tmp_path, weights, "--embedding-output", "embedding")
    status, out, err = run_main(argv, capsys)
    assert status == 0, err
    assert "classifier mine version 1" in out and "parity" in out
    card = json.loads((tmp_path / "models" / "mine" / "card.json").read_text())
    card_validator.validate(card)
    assert card["n_classes"] == 4 and card["output"]["scores"] == "logits"
    assert card["embedding_output"]["shape"] == [-1, 5] and card["input"]["shape"] == [-1, 1, 6, 6]
    (version,) = card["versions"]
    assert version["parity"]["max_abs_error"] <= 1e-4 and version["ir_version"] <= 10
    path = tmp_path / "models" / "mine" / version["file"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    logits, embedding = session.run(["logits", "embedding"], {"images": images.numpy()})
    with torch.no_grad():
        expected = network.eval()(images)
    np.testing.assert_allclose(logits, expected[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(embedding, expected[1].numpy(), atol=1e-5)
    assert Repository(tmp_path / "models", "cpu").load().not_ready() == {}


def test_embedding_export_and_a_second_version(tmp_path, capsys, card_validator):
    first, second = (save_weights(TinyEmbedding(), tmp_path, seed) for seed in (0, 1))
    for weights in (first, second):
        status, _, err = run_main(export_argv(tmp_path, weights, module=EMBEDDING), capsys)
        assert status == 0, err
    card = json.loads((tmp_path / "models" / "mine" / "card.json").read_text())
    card_validator.validate(card)
    assert card["kind"] == "embedding" and card["feature_dim"] == 7
    assert [v["version"] for v in card["versions"]] == [1, 2]
    assert card["versions"][0]["sha256"] != card["versions"][1]["sha256"]


def test_a_version_with_other_tensors_is_refused(tmp_path, capsys):
    weights = save_weights(TinyEmbedding(), tmp_path)
    assert run_main(export_argv(tmp_path, weights, module=EMBEDDING), capsys)[0] == 0
    wider = save_weights(TinyEmbedding(dim=3), tmp_path, 1)
    argv = export_argv(tmp_path, wider, "--init-args", '{"dim": 3}', module=EMBEDDING)
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "another --name" in err and "Traceback" not in err
    assert not (tmp_path / "models" / "mine" / "2").exists()


def test_a_failing_parity_is_refused_and_nothing_is_written(tmp_path, capsys):
    weights = save_weights(TinyClassifier(), tmp_path)
    argv = export_argv(tmp_path, weights, module="tests.feature_networks:NoisyClassifier")
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "ONNX parity failed" in err and "Traceback" not in err
    assert not (tmp_path / "models" / "mine").exists()


def pickled_module(tmp_path: Path) -> Path:
    """A whole pickled module (code, not a state_dict): torch.load(weights_only=True) refuses."""
    path = tmp_path / "module.pt"
    torch.save(TinyClassifier(), path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--module": "tests.feature_networks"}, "package.module:ClassName"),
        ({"--module": "tests.no_such_module:Net"}, "cannot import"),
        ({"--module": "tests.feature_networks:Nope"}, "cannot import"),
        ({"--init-args": '{"colours": 3}'}, "unexpected keyword"),
        ({"--init-args": "[1]"}, "expected a JSON object"),
        ({"--state-dict": "embedding"}, "does not fit TinyClassifier"),
        ({"--state-dict": "pickled"}, "not a state_dict of tensors"),
        ({"--state-dict": "missing"}, "no state_dict file"),
        ({"--classes": "3"}, "has 4 classes, not 3"),
        ({"--input-shape": "1,6"}, "expected C,H,W"),
        ({"--input-shape": "1,8,8"}, "the network fails on images of shape [8, 1, 8, 8]"),
        ({"--value-range": "1,0"}, "LOW < HIGH"),
        ({"--embedding-output": "logits"}, "a name of its own"),
        ({"--embedding-output": "embedding", "--threshold": "2"}, "threshold must be in [0, 1]"),
        ({"--name": "Bad Name"}, "invalid model name"),
    ],
)
def test_usage_errors_say_what_is_wrong(tmp_path, capsys, change, message):
    weights = {
        "embedding": save_weights(TinyEmbedding(), tmp_path),
        "pickled": pickled_module(tmp_path),
        "missing": tmp_path / "nope.pt",
    }
    argv = export_argv(tmp_path, save_weights(TinyClassifier(), tmp_path))
    for flag, value in change.items():
        value = str(weights.get(value, value)) if flag == "--state-dict" else value
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "models" / "mine").exists()


def old_layout_reference(models_dir: Path, name: str) -> None:
    """models_dir/<name> as `python -m trainer classifier` wrote it before classifier models:
    the digit classifier's ONNX file inside the reference, described by its card."""
    classifier = json.loads((REPO_MODELS / "digit-classifier" / "card.json").read_text())
    card = json.loads((REPO_MODELS / name / "card.json").read_text())
    shutil.copytree(REPO_MODELS / name, models_dir / name)
    shutil.copyfile(
        REPO_MODELS / "digit-classifier" / "1" / "model.onnx",
        models_dir / name / "1" / "model.onnx",
    )
    version = classifier["versions"][0]
    logits = {key: value for key, value in classifier["output"].items() if key != "scores"}
    card["reference"] = {
        **{key: card["reference"][key] for key in ("type", "channels", "n_modes", "weights")},
        "input": classifier["input"],
        "value_range": classifier["value_range"],
        "outputs": [logits, classifier["embedding_output"]],
        "apply": card["reference"]["apply"],
        "held_out_accuracy": classifier["held_out"]["accuracy"],
        **{key: version[key] for key in ("file", "sha256", "opset", "ir_version", "parity")},
        "features": card["reference"]["features"],
    }
    (models_dir / name / "card.json").write_text(json.dumps(card))


def test_migrate_reference_moves_the_classifier_out(tmp_path, capsys, card_validator):
    models = tmp_path / "models"
    for name in ("digits", "stacked-digits"):
        old_layout_reference(models, name)
    onnx_sha = sha256(models / "digits" / "1" / "model.onnx")
    for name in ("digits", "stacked-digits"):
        argv = ["migrate-reference", str(models / name), "--classifier", "digit-classifier"]
        status, out, err = run_main(argv, capsys)
        assert status == 0, err
        assert not (models / name / "1" / "model.onnx").exists()
    classifier = json.loads((models / "digit-classifier" / "card.json").read_text())
    card_validator.validate(classifier)
    assert classifier["versions"][0]["sha256"] == onnx_sha
    assert sha256(models / "digit-classifier" / "1" / "model.onnx") == onnx_sha
    for name in ("digits", "stacked-digits"):
        card = json.loads((models / name / "card.json").read_text())
        card_validator.validate(card)
        bundled = load_classifier_reference(REPO_MODELS / name, "cpu")
        migrated = load_classifier_reference(models / name, "cpu")
        assert migrated.spec == bundled.spec
        assert np.array_equal(migrated.features, bundled.features)
    status, _, err = run_main(
        ["migrate-reference", str(models / "digits"), "--classifier", "x"], capsys
    )
    assert status == 2 and "no classifier reference of the old layout" in err


@pytest.mark.parametrize(
    ("module", "scores"), [("TinyClassifier", "logits"), ("TinyProbabilities", "probabilities")]
)
def test_classify_applies_softmax_to_logits_only(tmp_path, module, scores):
    """lab.classify on the exported file gives the network's class probabilities either way
    (softmax of logits; probabilities as they are), stacked over 2 channels, and its
    embedding, or the probabilities when it has none, as features."""
    from lab.cards import classifier_spec, load_feature_model
    from lab.classify import classify
    from tests.feature_networks import TinyProbabilities
    from trainer.feature_export import FeatureExport, export_feature_model

    network = {"TinyClassifier": TinyClassifier, "TinyProbabilities": TinyProbabilities}[module]()
    embedding = "embedding" if scores == "logits" else None
    request = FeatureExport(
        f"tests.feature_networks:{module}",
        save_weights(network, tmp_path),
        (1, 6, 6),
        (0.0, 1.0),
        "mine",
        tmp_path / "models",
        n_classes=4,
        scores=scores,
        embedding_output=embedding,
    )
    export_feature_model(request)
    model = load_feature_model(tmp_path / "models" / "mine", "cpu")
    reference = {"type": "classifier", "channels": 2, "n_modes": 16, "weights": [1 / 16] * 16}
    spec = classifier_spec(reference, model.card)
    batch = np.random.default_rng(0).random((5, 2, 6, 6)).astype(np.float32)
    probabilities, features = classify(model.session, spec, batch)
    with torch.no_grad():
        outputs = network.eval()(torch.from_numpy(batch.reshape(10, 1, 6, 6)))
    expected = torch.softmax(outputs[0], dim=1) if scores == "logits" else outputs
    np.testing.assert_allclose(probabilities.reshape(10, 4), expected.numpy(), atol=1e-5)
    width = 5 if embedding else 4
    assert features.shape == (5, 2 * width)


def derive_argv(models: Path, classifier: str = "mnist-classifier") -> list:
    return ["export-embedding", "--from-classifier", classifier, "--name", "derived"] + [
        "--models-dir",
        str(models),
    ]


def test_an_embedding_derived_from_the_mnist_classifier_is_the_bundled_one(
    tmp_path, capsys, card_validator
):
    models = tmp_path / "models"
    shutil.copytree(REPO_MODELS / "mnist-classifier", models / "mnist-classifier")
    status, out, err = run_main(derive_argv(models), capsys)
    assert status == 0, err
    assert "embedding derived version 1" in out
    card = json.loads((models / "derived" / "card.json").read_text())
    card_validator.validate(card)
    bundled = json.loads((REPO_MODELS / "mnist-embedding" / "card.json").read_text())
    for key in ("input", "value_range", "output", "feature_dim", "versions"):
        assert card[key] == bundled[key], key  # the bundled model is reproducible
    (version,) = card["versions"]
    assert version["derived_from"] == {
        "model": "mnist-classifier",
        "version": 1,
        "output": "embedding",
    }
    assert sha256(models / "derived" / version["file"]) == version["sha256"]
    repository = Repository(models, "cpu").load()
    assert repository.not_ready() == {} and repository.get("derived").kind == "embedding"


def test_deriving_from_a_classifier_without_an_embedding_output_is_refused(tmp_path, capsys):
    weights = save_weights(TinyClassifier(), tmp_path)
    assert run_main(export_argv(tmp_path, weights), capsys)[0] == 0  # scores only
    status, _, err = run_main(derive_argv(tmp_path / "models", "mine"), capsys)
    assert status == 2 and "has no embedding_output" in err, err
    assert "--embedding-output" in err and not (tmp_path / "models" / "derived").exists()


def test_from_classifier_takes_no_network_flags(tmp_path, capsys):
    argv = derive_argv(tmp_path / "models") + ["--module", EMBEDDING]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "drop ['--module']" in err, err
