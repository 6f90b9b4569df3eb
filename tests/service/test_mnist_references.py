"""Real 28x28 MNIST digits against the bundled `mnist` and `stacked-mnist` references, over the
service's routes: the 1,000 held-out digits the classifier never saw (trainer's fixed split)."""

import io

import numpy as np
import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from service.app import create_app
from service.config import REPO_MODELS
from tests.helpers import make_config
from trainer.datasets.images import split_digits


@pytest.fixture(scope="module")
def client():
    return create_app(make_config(REPO_MODELS)).test_client()


@pytest.fixture(scope="module")
def held_out():
    """The 1,000 held-out MNIST digits, float32 [1000, 1, 28, 28] in [-1, 1], and labels."""
    images, labels = split_digits("held_out", "mnist")
    return images.numpy(), labels.numpy()


def post_npy(client, url: str, batch: np.ndarray, **fields: str):
    """POST batch as an .npy file plus form fields. The body is encoded in memory: the test
    client's own encoder spools bodies over 500 kB (these are 1-3 MB) to a temporary file it
    never closes, a ResourceWarning (an error here) in whichever test runs next."""
    buffer = io.BytesIO()
    np.save(buffer, batch)
    buffer.seek(0)
    form = {"file": FileStorage(buffer, filename="x.npy"), **fields}
    boundary, body = encode_multipart(form)
    return client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def diagnose(client, batch: np.ndarray, reference: str) -> dict:
    response = post_npy(client, "/v1/diagnostics", batch, reference=reference)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_classifier_and_both_references_are_listed_ready(client):
    models = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert models["mnist-classifier"]["kind"] == "classifier", models["mnist-classifier"]
    assert models["mnist-classifier"]["ready"], models["mnist-classifier"]
    listed = {r["name"]: r for r in client.get("/v1/references").get_json()["references"]}
    for name in ("mnist", "stacked-mnist"):
        assert listed[name]["ready"] and listed[name]["type"] == "classifier", listed[name]
        assert listed[name]["dataset"] == name


def test_half_of_the_held_out_digits_is_healthy(client, held_out):
    images, _ = held_out
    rows = np.random.default_rng(0).choice(len(images), 500, replace=False)
    report = diagnose(client, images[rows], "mnist")
    assert report["modes"]["covered"] == 10 and report["high_quality_fraction"] > 0.9
    assert report["verdict"]["status"] == "healthy", report["verdict"]


def test_a_removed_digit_is_named_missing(client, held_out):
    images, labels = held_out
    report = diagnose(client, images[labels != 7], "mnist")
    assert report["modes"]["missing"] == [7]
    assert report["verdict"]["status"] == "partial_collapse", report["verdict"]


def test_stacked_triples_count_base_ten_modes(client, held_out):
    images, labels = held_out
    by_class = {d: images[labels == d][:20] for d in range(10)}
    batch = np.concatenate([by_class[4], by_class[0], by_class[9]], axis=1)  # [20, 3, 28, 28]
    report = diagnose(client, batch, "stacked-mnist")
    assert np.flatnonzero(report["modes"]["histogram"]).tolist() == [409]


def test_an_uploaded_28x28_reference_is_embedded_by_the_mnist_classifier(client, held_out):
    images, _ = held_out
    created = post_npy(client, "/v1/references", images[:300], name="my-mnist")
    try:
        assert created.status_code == 201, created.get_json()
        spec = created.get_json()["reference"]
        assert spec["classifier"] == "mnist-classifier" and "confidence" not in spec
        # the classifier card's threshold (0.999) judges the upload as it judges `mnist`
        batch = images[300:600]
        mine, bundled = diagnose(client, batch, "my-mnist"), diagnose(client, batch, "mnist")
        assert mine["high_quality_fraction"] == bundled["high_quality_fraction"] < 0.99
    finally:
        client.delete("/v1/references/my-mnist")


def test_the_mnist_embedding_is_listed_ready_as_an_embedding(client):
    models = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    embedding = models["mnist-embedding"]
    assert embedding["kind"] == "embedding" and embedding["ready"], embedding
    assert embedding["card"]["feature_dim"] == 64


def test_a_reference_embedded_by_the_mnist_embedding_names_a_removed_digit(client, held_out):
    """400 training digits (40 a class) embedded by mnist-embedding get discovered modes; held-out
    digits without 0s are partial_collapse, missing exactly the modes whose exemplars are 0s.
    (0 is a digit the benchmark, bench.mnist_cluster_modes, names in every trial.)"""
    images, labels = split_digits("train", "mnist")
    images, labels = images.numpy(), labels.numpy()
    rows = np.concatenate([np.flatnonzero(labels == digit)[:40] for digit in range(10)])
    created = post_npy(
        client,
        "/v1/references",
        images[rows],
        name="my-mnist-embedded",
        embedding="mnist-embedding",
    )
    try:
        assert created.status_code == 201, created.get_json()
        modes = created.get_json()["reference"]["modes"]
        assert modes["k_rule"] == "silhouette" and modes["k"] >= 2, modes
        exemplar_digits = [set(labels[rows][r].tolist()) for r in modes["exemplar_rows"]]
        held_images, held_labels = held_out
        batch = held_images[held_labels != 0][::3]  # 300 digits of 1-9
        report = diagnose(client, batch, "my-mnist-embedded")
        missing = report["modes"]["missing"]
        assert report["verdict"]["status"] == "partial_collapse", report["verdict"]
        zeros = [k for k, digits in enumerate(exemplar_digits) if digits == {0}]
        assert zeros and missing == zeros, (missing, exemplar_digits)
    finally:
        client.delete("/v1/references/my-mnist-embedded")
