"""Classifier and embedding models in the repository: loaded and checked against their cards,
listed, named by references; POST /v1/references with `classifier=` or `embedding=`."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.app import create_app
from tests.feature_networks import export_tiny
from tests.helpers import make_config
from trainer.classifier_references import write_classifier_reference


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory) -> Path:
    """tiny-classifier (4 classes of 1x6x6 images in [0, 1]) and tiny-embedding (7 features);
    bad-classifier (its card names an output its ONNX file lacks); tiny-reference (naming
    tiny-classifier), orphan-reference (naming a missing classifier) and mismatched-reference
    (16 modes for a 1-channel 4-class classifier)."""
    models = tmp_path_factory.mktemp("feature-repo") / "models"
    models.mkdir()
    export_tiny(models, "classifier", "tiny-classifier")
    export_tiny(models, "embedding", "tiny-embedding")
    shutil.copytree(models / "tiny-classifier", models / "bad-classifier")
    card = json.loads((models / "bad-classifier" / "card.json").read_text())
    card |= {"name": "bad-classifier", "output": {**card["output"], "name": "scores"}}
    (models / "bad-classifier" / "card.json").write_text(json.dumps(card))
    classifier = json.loads((models / "tiny-classifier" / "card.json").read_text())
    features = (np.random.default_rng(0).normal(size=(30, 5)), {})
    for name, target, n_modes in [
        ("tiny-reference", "tiny-classifier", 4),
        ("orphan-reference", "no-such-classifier", 4),
        ("mismatched-reference", "tiny-classifier", 16),
    ]:
        modes = {"channels": 1, "n_modes": n_modes, "weights": [1 / n_modes] * n_modes}
        named = {**classifier, "name": target}
        write_classifier_reference(models, name, "tiny", "test", named, modes, features)
    return models


@pytest.fixture(scope="module")
def client(feature_repo):
    return create_app(make_config(feature_repo)).test_client()


def images(n: int, channels: int = 1, size: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, channels, size, size)).astype(np.float32)


def upload(client, path: str, batch: np.ndarray, **fields: str):
    buffer = io.BytesIO()
    np.save(buffer, batch)
    form = {"file": (io.BytesIO(buffer.getvalue()), "batch.npy"), **fields}
    return client.post(path, data=form, content_type="multipart/form-data")


def test_models_are_listed_with_their_kind(client):
    models = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert models["tiny-classifier"]["kind"] == "classifier" and models["tiny-classifier"]["ready"]
    assert models["tiny-embedding"]["kind"] == "embedding" and models["tiny-embedding"]["ready"]
    assert models["tiny-embedding"]["versions"] == [1]


def test_an_onnx_file_that_does_not_match_its_card_is_not_ready_with_the_reason(client):
    model = client.get("/v1/models/bad-classifier").get_json()
    assert not model["ready"]
    assert "1/model.onnx does not match card.json" in model["error"]
    assert "'scores'" in model["error"]
    assert client.get("/v1/models/tiny-classifier").get_json()["ready"]  # the rest serve


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("orphan-reference", "classifier 'no-such-classifier' not in the repository"),
        ("mismatched-reference", "n_modes 16 != 4 classes ** 1 channels"),
    ],
)
def test_a_reference_naming_an_unusable_classifier_is_not_ready(client, name, reason):
    listed = {r["name"]: r for r in client.get("/v1/references").get_json()["references"]}
    assert not listed[name]["ready"] and reason in listed[name]["error"]
    assert listed["tiny-reference"]["ready"]


def test_a_reference_naming_a_classifier_classifies_with_it(client):
    report = upload(client, "/v1/diagnostics", images(40), reference="tiny-reference").get_json()
    assert report["modes"]["total"] == 4 and report["n_samples"] == 40
    confident = sum(report["modes"]["histogram"])  # by the card's rule, max probability >= 0.3
    assert confident > 0 and confident == round(report["high_quality_fraction"] * 40)


@pytest.mark.parametrize(("channels", "n_modes"), [(1, 4), (2, 16)])
def test_a_reference_classified_by_a_named_classifier(client, channels, n_modes):
    """Stacked over channels as stacked digits are; the same batch diagnosed against it has the
    same features (precision = recall = 1): the diagnosis ran the same classifier."""
    batch, name = images(60, channels), f"by-classifier-{channels}"
    created = upload(client, "/v1/references", batch, name=name, classifier="tiny-classifier")
    assert created.status_code == 201, created.get_json()
    spec = created.get_json()["reference"]
    assert (spec["type"], spec["classifier"], spec["classifier_version"]) == (
        "classifier",
        "tiny-classifier",
        1,
    )
    assert (spec["channels"], spec["n_modes"], spec["feature_dim"]) == (
        channels,
        n_modes,
        5 * channels,
    )
    report = upload(client, "/v1/diagnostics", batch, reference=name).get_json()
    client.delete(f"/v1/references/{name}")
    manifold = report["features"]["manifold"]
    assert manifold["precision"] == manifold["recall"] == 1.0
    assert report["modes"]["total"] == n_modes


def test_a_reference_embedded_by_a_named_embedding(client):
    batch = images(60)
    created = upload(
        client, "/v1/references", batch, name="by-embedding", embedding="tiny-embedding"
    )
    assert created.status_code == 201, created.get_json()
    spec = created.get_json()["reference"]
    assert spec["type"] == "features" and spec["embedding"] == "model"
    assert (spec["embedding_model"], spec["embedding_version"], spec["feature_dim"]) == (
        "tiny-embedding",
        1,
        7,
    )
    same = upload(client, "/v1/diagnostics", batch, reference="by-embedding").get_json()
    other = upload(client, "/v1/diagnostics", images(60, seed=1), reference="by-embedding")
    client.delete("/v1/references/by-embedding")
    assert same["features"]["manifold"]["precision"] == same["features"]["manifold"]["recall"] == 1
    assert other.status_code == 200 and other.get_json()["n_samples"] == 60


@pytest.mark.parametrize(
    ("batch", "fields", "status", "detail"),
    [
        (
            images(5, size=8),
            {"embedding": "tiny-embedding"},
            422,
            "sent 8x8 images with 1 channel; embedding 'tiny-embedding' takes 6x6 images with "
            "1 channel",
        ),
        (
            np.zeros((5, 36), np.float32),
            {"embedding": "tiny-embedding"},
            422,
            "sent vectors of 36 values; embedding 'tiny-embedding' takes 6x6 images with 1 channel",
        ),
        (
            images(5, size=8),
            {"classifier": "tiny-classifier"},
            422,
            "takes 6x6 images with 1 channel, or a stack of them along the channels",
        ),
        (
            images(5, channels=9),
            {"classifier": "tiny-classifier"},
            422,
            "make 4**9 modes, more than the 100000 a reference may have",
        ),
        (
            images(5),
            {"classifier": "tiny-classifier", "embedding": "tiny-embedding"},
            400,
            "either 'classifier'",
        ),
        (images(5), {"classifier": "nope"}, 404, "no classifier named 'nope' (known: "),
        (images(5), {"embedding": "tiny-classifier"}, 404, "known: tiny-embedding"),
        (images(5), {"classifier": "bad-classifier"}, 503, "not ready"),
    ],
)
def test_bad_requests_say_what_is_wrong_and_store_nothing(client, batch, fields, status, detail):
    response = upload(client, "/v1/references", batch, name="never-stored", **fields)
    body = response.get_json()
    assert response.status_code == status, body
    assert response.mimetype == "application/problem+json" and detail in body["detail"]
    assert client.get("/v1/references/never-stored").status_code == 404


def test_an_uploaded_reference_whose_model_is_gone_is_503(feature_repo, tmp_path):
    """The stored reference remembers its embedding model: a repository without it answers
    503 naming the model, not 500 or a diagnosis in another feature space."""
    config = make_config(feature_repo)
    batch = images(30)
    created = upload(
        create_app(config).test_client(),
        "/v1/references",
        batch,
        name="kept",
        embedding="tiny-embedding",
    )
    assert created.status_code == 201
    smaller = tmp_path / "models"
    shutil.copytree(feature_repo / "tiny-classifier", smaller / "tiny-classifier")
    client = create_app(make_config(smaller, data_dir=config.data_dir)).test_client()
    response = upload(client, "/v1/diagnostics", batch, reference="kept")
    assert response.status_code == 503
    assert "'tiny-embedding' is not in the repository" in response.get_json()["detail"]
