"""Class-conditional score models served: labels (or a class mix) in the request, the samples
the trainer's sampler gives for the same labels, one answer by the fused graph, the step graphs
and the numpy sampler, the report's classes section, jobs, /v2 with INT64 labels, and labels
refused for an unconditional score model."""

import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lab.conditioning import drawn_labels
from lab.sampling import STEPPED, ScoreSpec, open_score_graphs, stepped_score_samples
from service.app import create_app
from tests.helpers import TINY_SCORE, make_config
from trainer.edm.config import ScoreConfig
from trainer.edm.export import TRAJECTORY_TOLERANCE, export_score
from trainer.edm.training_loop import load_run, score_training_loop

NAME = "ring8-cedm"
NPY = {"Accept": "application/x-npy"}
CLASSES = 4  # two ring8 modes per class: class k holds modes 2k and 2k + 1
STEPS = 300
# The three ways a request is drawn (lab.sampling.sampling_path), by the service's settings.
PATHS = {
    "fused": {"fused_sampler": "on", "step_graphs": "on"},
    "step_graphs": {"fused_sampler": "off", "step_graphs": "on"},
    "numpy": {"fused_sampler": "off", "step_graphs": "off"},
}


@pytest.fixture(scope="module")
def conditional_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny repository with a tiny conditional ring8 score model of 4 classes, trained and
    exported by the trainer as `ring8-cedm`."""
    root = tmp_path_factory.mktemp("conditional-score")
    models = Path(shutil.copytree(model_repo, root / "models"))
    # more steps than TINY_SCORE's 20, so that the labels visibly steer the samples
    config = ScoreConfig(dataset="ring8", classes=CLASSES, **{**TINY_SCORE, "steps": STEPS})
    score_training_loop(config, root / "run", resume=False, progress=False)
    export_score(root / "run", models, NAME)
    return models


@pytest.fixture(scope="module")
def clients(conditional_repo) -> dict:
    """A test client per sampling path."""
    return {
        path: create_app(make_config(conditional_repo, **settings)).test_client()
        for path, settings in PATHS.items()
    }


@pytest.fixture(scope="module")
def client(clients):
    return clients["fused"]


@pytest.fixture(scope="module")
def trained(conditional_repo):
    return load_run(conditional_repo.parent / "run")


def npy_samples(client, body: dict) -> np.ndarray:
    response = client.post(f"/v1/models/{NAME}/samples", json=body, headers=NPY)
    assert response.status_code == 200, response.get_json()
    return np.load(io.BytesIO(response.data))


def test_the_card_declares_the_classes_and_every_graph_takes_labels(client, conditional_repo):
    card = client.get(f"/v1/models/{NAME}").get_json()["card"]
    assert card["conditional"] == {
        "classes": CLASSES,
        "weights": [0.25] * CLASSES,
        "input": {"name": "labels", "dtype": "int64", "shape": [-1]},
    }
    assert card["architecture"]["args"]["classes"] == CLASSES
    assert card["diagnostics"]["classes"]["count"] == CLASSES
    version = card["versions"][0]
    files = [version["file"], version["fused"]["file"]]
    files += [version["step_graphs"][sampler]["file"] for sampler in ("euler", "heun")]
    for file in files:
        inputs = onnx.load(conditional_repo / NAME / file).graph.input
        labels = [value for value in inputs if value.name == "labels"]
        assert len(labels) == 1 and labels[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_labels_give_the_trainers_samples(client, trained):
    labels = np.array([3, 0, 1, 2, 2, 1])
    served = npy_samples(client, {"n": 6, "seed": 7, "labels": labels.tolist()})
    want = trained.samples(6, 7, labels=labels)
    np.testing.assert_allclose(served, want, rtol=0, atol=TRAJECTORY_TOLERANCE)
    # each sample is a function of its noise and its label: another label changes it alone
    other = npy_samples(client, {"n": 6, "seed": 7, "labels": [0, 0, 1, 2, 2, 1]})
    assert np.abs(other[0] - served[0]).max() > 1e-3 and np.array_equal(other[1:], served[1:])


@pytest.mark.parametrize(
    "body",
    [{}, {"steps": 7, "sampler": "euler"}, {"churn": 5.0}],
    ids=["default", "euler-7", "churn"],
)
def test_the_three_sampling_paths_agree(clients, body):
    request = {"n": 40, "seed": 3, "labels": [k % CLASSES for k in range(40)], **body}
    answers = {path: npy_samples(client, request) for path, client in clients.items()}
    if not body:  # the default request: the fused graph, which the others reproduce
        np.testing.assert_allclose(answers["fused"], answers["numpy"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(answers["step_graphs"], answers["numpy"], rtol=0, atol=1e-4)
    unconditioned = npy_samples(clients["numpy"], {**request, "labels": 0})
    assert np.abs(unconditioned[1:] - answers["numpy"][1:]).max() > 1e-3


def test_step_graph_pieces_keep_each_rows_label(conditional_repo, client, trained):
    card = client.get(f"/v1/models/{NAME}").get_json()["card"]
    graphs = open_score_graphs(conditional_repo / NAME, card["versions"][0], STEPPED, "cpu")
    labels = np.arange(10, dtype=np.int64) % CLASSES
    spec = ScoreSpec.from_card(card)
    pieces = stepped_score_samples(
        graphs.steppers, spec, 10, 2, 5, "heun", max_batch=4, labels=labels
    )
    whole = trained.samples(10, 2, steps=5, labels=labels)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=TRAJECTORY_TOLERANCE)


def test_no_labels_draws_the_cards_class_mix_from_the_seed(client):
    served = npy_samples(client, {"n": 40, "seed": 11})
    labels = drawn_labels([0.25] * CLASSES, 40, 11)
    assert np.array_equal(
        served, npy_samples(client, {"n": 40, "seed": 11, "labels": labels.tolist()})
    )
    mix = npy_samples(client, {"n": 40, "seed": 11, "class_mix": [0, 0, 1, 0]})
    assert np.array_equal(mix, npy_samples(client, {"n": 40, "seed": 11, "labels": 2}))


def test_diagnose_judges_the_samples_drawn_for_each_class(client):
    response = client.post(f"/v1/models/{NAME}/diagnose", json={"n": 400, "seed": 0})
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["classes"]["per_class"]
    drawn = np.bincount(drawn_labels([0.25] * CLASSES, 400, 0), minlength=CLASSES)
    assert [entry["n"] for entry in entries] == drawn.tolist()
    assert [entry["modes"]["total"] for entry in entries] == [2] * CLASSES
    mixed = {"n": 300, "seed": 0, "class_mix": [0.5, 0, 0, 0.5]}
    entries = client.post(f"/v1/models/{NAME}/diagnose", json=mixed).get_json()["classes"]
    assert [entry["n"] > 0 for entry in entries["per_class"]] == [True, False, False, True]


def test_the_cards_diagnostics_are_the_default_requests(client):
    card = client.get(f"/v1/models/{NAME}").get_json()["card"]
    measured = card["diagnostics"]
    body = {"n": measured["n"], "seed": measured["seed"]}
    report = client.post(f"/v1/models/{NAME}/diagnose", json=body).get_json()
    assert report["classes"] == measured["classes"]
    assert report["modes"]["histogram"] == measured["modes"]["histogram"]


def test_a_job_gives_the_synchronous_answer(conditional_repo):
    app = create_app(make_config(conditional_repo))
    client = app.test_client()
    path = f"/v1/models/{NAME}/diagnose"
    body = {"n": 200, "seed": 5, "labels": 1, "steps": 6}
    try:
        accepted = client.post(path, json=body, headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202
        location = accepted.headers["Location"]
        deadline = time.monotonic() + 60
        while client.get(location).get_json()["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with client.get(f"{location}/result") as response:
            result = response.get_json()
    finally:
        app.extensions["job_runner"].stop()
    synchronous = client.post(path, json=body).get_json()
    assert result["classes"] == synchronous["classes"]
    assert result["classes"]["per_class"][1]["n"] == 200


@pytest.mark.parametrize(
    "body, words",
    [
        ({"n": 3, "labels": [0, 1, 4]}, "labels must lie in 0..3"),
        ({"n": 3, "labels": [0, 1]}, "a list of n = 3 integers"),
        ({"n": 3, "class_mix": [0.5, 0.5, 0.5, 0]}, "summing to 1"),
    ],
)
def test_bad_labels_are_a_400_naming_the_fix(client, body, words):
    response = client.post(f"/v1/models/{NAME}/samples", json=body)
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert words in response.get_json()["detail"]


@pytest.mark.parametrize("field", [{"labels": 0}, {"class_mix": [0.5, 0.5]}])
def test_labels_for_an_unconditional_score_model_are_refused(client, field):
    response = client.post("/v1/models/grid25-edm/samples", json={"n": 2, **field})
    assert response.status_code == 400
    detail = response.get_json()["detail"]
    assert "for class-conditional models only; grid25-edm is not one" in detail


def test_v2_exposes_the_denoiser_with_int64_labels(client, trained):
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    sigma, labels = np.array([0.1, 1.0, 5.0], np.float32), np.array([0, 3, 2])
    inputs = [
        {"name": "x", "shape": [3, 2], "datatype": "FP32", "data": x.ravel().tolist()},
        {"name": "sigma", "shape": [3], "datatype": "FP32", "data": sigma.tolist()},
        {"name": "labels", "shape": [3], "datatype": "INT64", "data": labels.tolist()},
    ]
    response = client.post(f"/v2/models/{NAME}/infer", data=json.dumps({"inputs": inputs}))
    assert response.status_code == 200, response.get_json()
    with torch.no_grad():
        want = trained.ema(*map(torch.from_numpy, (x, sigma, labels))).numpy()
    data = np.reshape(response.get_json()["outputs"][0]["data"], (3, 2))
    np.testing.assert_allclose(data, want, rtol=0, atol=1e-5)
    inputs[2]["data"] = [0, 3, 4]
    outside = client.post(f"/v2/models/{NAME}/infer", data=json.dumps({"inputs": inputs}))
    assert outside.status_code == 400 and "label 2 is 4" in outside.get_json()["detail"]
