"""Class-conditional GANs served: labels (or a class mix) in the request, the samples the
trainer's G(z, labels) gives, the report's classes section, /v2 with INT64 labels, and every bad
input refused with a 400 naming the fix."""

import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from bench.server import running_server
from lab.conditioning import drawn_labels
from lab.noise import gaussian_latents
from service.app import create_app
from tests.helpers import TINY_GAN, make_config
from tests.service.test_operations import metric_value
from trainer.config import TrainConfig
from trainer.ensemble import MemberChoice, write_ensemble
from trainer.export import export_gan, load_generator
from trainer.training_loop import training_loop

NAME = "ring8-cgan"
NPY = {"Accept": "application/x-npy"}
CLASSES = 4  # two ring8 modes per class: class k holds modes 2k and 2k + 1
RUNS = "nv_inference_exec_count"  # onnxruntime runs per model version (service/metrics.py)


@pytest.fixture(scope="module")
def conditional_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny repository with a tiny conditional ring8 GAN of 4 classes, trained and exported
    by the trainer as `ring8-cgan`."""
    root = tmp_path_factory.mktemp("conditional")
    models = Path(shutil.copytree(model_repo, root / "models"))
    config = replace(TrainConfig(), dataset="ring8", classes=CLASSES, **TINY_GAN)
    training_loop(config, root / "run", resume=False, progress=False)
    export_gan(root / "run", models, NAME)
    return models


@pytest.fixture(scope="module")
def client(conditional_repo):
    return create_app(make_config(conditional_repo)).test_client()


@pytest.fixture(scope="module")
def generator(conditional_repo):
    return load_generator(conditional_repo.parent / "run")[0]


def expected(generator, n: int, seed: int, labels: np.ndarray) -> np.ndarray:
    z = torch.from_numpy(gaussian_latents(n, 2, seed))
    with torch.no_grad():
        return generator(z, torch.from_numpy(labels)).numpy()


def npy_samples(client, body: dict) -> np.ndarray:
    response = client.post(f"/v1/models/{NAME}/samples", json=body, headers=NPY)
    assert response.status_code == 200, response.get_json()
    return np.load(io.BytesIO(response.data))


def test_the_card_declares_the_classes_and_the_labels_input(client):
    card = client.get(f"/v1/models/{NAME}").get_json()["card"]
    assert card["conditional"]["classes"] == CLASSES
    assert card["conditional"]["weights"] == [0.25] * CLASSES
    assert card["conditional"]["input"] == {"name": "labels", "dtype": "int64", "shape": [-1]}
    assert card["diagnostics"]["classes"]["count"] == CLASSES


def test_labels_give_the_trainers_samples(client, generator):
    labels = [3, 0, 1, 2, 2, 1]
    served = npy_samples(client, {"n": 6, "seed": 7, "labels": labels})
    want = expected(generator, 6, 7, np.array(labels))
    np.testing.assert_allclose(served, want, atol=1e-5)
    # each sample is a function of its latent and label: another label changes it
    other = npy_samples(client, {"n": 6, "seed": 7, "labels": [0, 0, 1, 2, 2, 1]})
    assert not np.array_equal(other[0], served[0]) and np.array_equal(other[1:], served[1:])


def test_one_label_is_every_samples_class(client):
    assert np.array_equal(
        npy_samples(client, {"n": 5, "seed": 2, "labels": 1}),
        npy_samples(client, {"n": 5, "seed": 2, "labels": [1] * 5}),
    )
    body = client.post(f"/v1/models/{NAME}/samples", json={"n": 5, "labels": 1}).get_json()
    assert body["labels"] == 1  # echoed as sent: a body that draws the same samples


def test_no_labels_draws_the_cards_class_mix_from_the_seed(client, generator):
    served = npy_samples(client, {"n": 40, "seed": 11})
    labels = drawn_labels([0.25] * CLASSES, 40, 11)
    assert len(set(labels.tolist())) == CLASSES
    np.testing.assert_allclose(served, expected(generator, 40, 11, labels), atol=1e-5)
    # a class mix with all its weight on one class is that label everywhere
    mix = npy_samples(client, {"n": 40, "seed": 11, "class_mix": [0, 0, 1, 0]})
    assert np.array_equal(mix, npy_samples(client, {"n": 40, "seed": 11, "labels": 2}))


def test_the_json_answer_echoes_the_labels(client):
    body = client.post(f"/v1/models/{NAME}/samples", json={"n": 2, "labels": [0, 3]}).get_json()
    assert body["labels"] == [0, 3] and body["shape"] == [2, 2]
    mix = {"n": 2, "class_mix": [0.5, 0.5, 0, 0]}
    mixed = client.post(f"/v1/models/{NAME}/samples", json=mix)
    assert mixed.get_json()["class_mix"] == [0.5, 0.5, 0.0, 0.0]


def test_diagnose_reports_each_class_against_its_own_modes(client):
    response = client.post(f"/v1/models/{NAME}/diagnose", json={"n": 400, "seed": 0})
    assert response.status_code == 200, response.get_json()
    section = response.get_json()["classes"]
    assert section["count"] == CLASSES and len(section["per_class"]) == CLASSES
    assert sum(entry["n"] for entry in section["per_class"]) == 400
    assert all(entry["modes"]["total"] == 2 for entry in section["per_class"])
    one = client.post(f"/v1/models/{NAME}/diagnose", json={"n": 100, "labels": 3}).get_json()
    counts = [entry["n"] for entry in one["classes"]["per_class"]]
    assert counts == [0, 0, 0, 100] and one["classes"]["per_class"][0]["verdict"] is None


@pytest.mark.parametrize(
    "body, words",
    [
        ({"n": 3, "labels": [0, 1, 4]}, "labels must lie in 0..3"),
        ({"n": 3, "labels": -1}, "labels must lie in 0..3"),
        ({"n": 3, "labels": [0, 1]}, "a list of n = 3 integers"),
        ({"n": 3, "labels": [0, 1, True]}, "a list of n = 3 integers"),
        ({"n": 3, "labels": 1.5}, "one class (an integer)"),
        ({"n": 3, "labels": 2**70}, "labels must lie in 0..3"),
        ({"n": 3, "labels": [0, 1, -(2**70)]}, "labels must lie in 0..3"),
        ({"n": 3, "labels": 10**400}, "got 100000000000... (401 digits)"),
        ({"n": 3, "labels": 1, "class_mix": [1, 0, 0, 0]}, "not both"),
        ({"n": 3, "class_mix": [0.5, 0.5]}, "a list of 4 numbers"),
        ({"n": 3, "class_mix": [0.5, 0.5, 0.5, 0]}, "summing to 1"),
        ({"n": 3, "class_mix": [1.5, -0.5, 0, 0]}, "weights in [0, 1]"),
    ],
)
def test_bad_labels_are_a_400_naming_the_fix(client, body, words):
    response = client.post(f"/v1/models/{NAME}/samples", json=body)
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert words in response.get_json()["detail"]


def test_labels_for_an_unconditional_model_are_refused(client):
    response = client.post("/v1/models/ring8-gan/samples", json={"n": 2, "labels": 0})
    assert response.status_code == 400
    detail = response.get_json()["detail"]
    assert "for class-conditional models only; ring8-gan is not one" in detail


def v2_infer(client, labels: np.ndarray, datatype: str = "INT64"):
    z = gaussian_latents(len(labels), 2, 0)
    inputs = [
        {"name": "z", "shape": [len(labels), 2], "datatype": "FP32", "data": z.ravel().tolist()},
        {"name": "labels", "shape": [len(labels)], "datatype": datatype, "data": labels.tolist()},
    ]
    return client.post(f"/v2/models/{NAME}/infer", data=json.dumps({"inputs": inputs}))


def test_v2_takes_int64_labels(client, generator):
    labels = np.array([0, 3, 2])
    response = v2_infer(client, labels)
    assert response.status_code == 200, response.get_json()
    data = np.reshape(response.get_json()["outputs"][0]["data"], (3, 2))
    np.testing.assert_allclose(data, expected(generator, 3, 0, labels), atol=1e-5)
    metadata = client.get(f"/v2/models/{NAME}").get_json()
    assert metadata["inputs"][1] == {"name": "labels", "datatype": "INT64", "shape": [-1]}


def test_v2_refuses_float_or_out_of_range_labels(client):
    wrong_type = v2_infer(client, np.array([0.0, 1.0]), "FP32")
    assert wrong_type.status_code == 400 and "must be INT64" in wrong_type.get_json()["detail"]
    outside = v2_infer(client, np.array([0, 9]))
    assert outside.status_code == 400 and "label 1 is 9" in outside.get_json()["detail"]
    # JSON values that are no INT64: a fraction (not cut to 0), an integer past int64
    for data in ([0, 0.5], [0, 2**70]):
        z = gaussian_latents(2, 2, 0)
        inputs = [
            {"name": "z", "shape": [2, 2], "datatype": "FP32", "data": z.ravel().tolist()},
            {"name": "labels", "shape": [2], "datatype": "INT64", "data": data},
        ]
        answer = client.post(f"/v2/models/{NAME}/infer", data=json.dumps({"inputs": inputs}))
        assert answer.status_code == 400
        assert "'data' is not a list of INT64 numbers" in answer.get_json()["detail"]


def test_an_ensemble_refuses_a_conditional_member(conditional_repo):
    choices = [MemberChoice("ring8-gan", None, 0.5), MemberChoice(NAME, None, 0.5)]
    with pytest.raises(ValueError, match="class-conditional"):
        write_ensemble(conditional_repo, "ring8-mixed", choices)


def test_merged_requests_with_different_labels_get_their_own_samples(conditional_repo, tmp_path):
    """The real gunicorn, one guard slot and a 0.3-s batching window: concurrent requests with
    different labels (and class mixes) merge into one run, and each gets what it gets alone."""
    bodies = [
        {"n": 5, "seed": 1, "labels": 0},
        {"n": 3, "seed": 2, "labels": [3, 2, 1]},
        {"n": 40, "seed": 3},
        {"n": 7, "seed": 4, "class_mix": [0, 0.5, 0.5, 0]},
    ]
    settings = {"BATCH_WINDOW_US": "300000", "MAX_IN_FLIGHT": "1", "THREADS": "8"}

    def post(url: str, body: dict) -> bytes:
        answer = requests.post(
            f"{url}/v1/models/{NAME}/samples", json=body, headers=NPY, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.content

    with running_server(
        conditional_repo, tmp_path / "server.log", WEB_CONCURRENCY="1", **settings
    ) as (
        url,
        _,
    ):
        post(url, bodies[0])  # the first run of a worker is not timed against the window
        metrics = {"model": NAME, "version": "1"}
        before = metric_value(requests.get(f"{url}/metrics", timeout=5).text, RUNS, **metrics)
        with ThreadPoolExecutor(len(bodies)) as pool:
            merged = list(pool.map(lambda body: post(url, body), bodies))
        after = metric_value(requests.get(f"{url}/metrics", timeout=5).text, RUNS, **metrics)
        alone = [post(url, body) for body in bodies]
    assert merged == alone
    assert 1 <= after - before < len(bodies)  # merged: fewer runs than requests
