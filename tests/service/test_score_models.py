"""Score models through /v1: seeded samples, steps and sampler fields, diagnostics."""

import io
import json

import numpy as np
import pytest

from service.app import create_app
from tests.helpers import make_config

# The exact float32 samples (JSON holds their shortest decimals, which an upload reads as
# float64).
NPY = {"Accept": "application/x-npy"}

PROBLEM = "application/problem+json"
NAME = "grid25-edm"


def draw(client, **body) -> dict:
    response = client.post(f"/v1/models/{NAME}/samples", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_score_model_is_listed_and_ready(client):
    model = client.get(f"/v1/models/{NAME}").get_json()
    assert model["kind"] == "score" and model["ready"] and model["versions"] == [1]
    assert model["provider"] == "CPUExecutionProvider"


def test_defaults_come_from_the_card(client):
    body = draw(client, n=4, seed=0)
    assert body["steps"] == 18 and body["sampler"] == "heun"
    assert body["network_evaluations"] == 35 and body["shape"] == [4, 2]


def test_same_seed_same_samples(client):
    first, again, other = (draw(client, n=64, seed=s)["samples"] for s in (5, 5, 6))
    assert first == again and first != other


def test_batch_size_never_changes_the_samples(model_repo):
    answers = []
    for max_batch in (3, 8192):
        client = create_app(make_config(model_repo, max_batch=max_batch)).test_client()
        answers.append(draw(client, n=10, seed=2, sampler="heun"))
    assert answers[0] == answers[1]


@pytest.mark.parametrize(("sampler", "evaluations"), [("euler", 7), ("heun", 13)])
def test_sampler_and_steps_are_honoured(client, sampler, evaluations):
    body = draw(client, n=8, seed=1, steps=7, sampler=sampler)
    assert body["steps"] == 7 and body["sampler"] == sampler
    assert body["network_evaluations"] == evaluations
    assert body["samples"] != draw(client, n=8, seed=1)["samples"]


def test_churn_is_seeded(client):
    churned, again = (draw(client, n=8, seed=1, churn=20.0) for _ in "ab")
    assert churned["samples"] == again["samples"] and churned["churn"] == 20.0
    assert churned["samples"] != draw(client, n=8, seed=1)["samples"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"steps": 0}, "'steps' must be between 1 and 256"),
        ({"steps": 257}, "'steps' must be between 1 and 256"),
        ({"steps": "18"}, "'steps' must be an integer"),
        ({"steps": 2.5}, "'steps' must be an integer"),
        ({"sampler": "dpm"}, "'sampler' must be one of euler, heun"),
        ({"sampler": 1}, "'sampler' must be one of euler, heun"),
        ({"churn": -1}, "'churn' must be between 0 and 100"),
        ({"churn": "x"}, "'churn' must be a number"),
    ],
)
@pytest.mark.parametrize("route", ["samples", "diagnose"])
def test_bad_sampler_fields_are_400(client, route, body, fragment):
    response = client.post(f"/v1/models/{NAME}/{route}", json={"n": 4, **body})
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert fragment in response.get_json()["detail"]


def test_max_steps_is_configurable(model_repo):
    client = create_app(make_config(model_repo, max_steps=10)).test_client()
    response = client.post(f"/v1/models/{NAME}/samples", json={"n": 1, "steps": 11})
    assert response.status_code == 400 and "between 1 and 10" in response.get_json()["detail"]


def test_gan_models_refuse_sampler_fields(client):
    response = client.post("/v1/models/ring8-gan/samples", json={"n": 1, "sampler": "heun"})
    assert response.status_code == 400 and "for score models only" in response.get_json()["detail"]


def card_and_request(model_repo) -> tuple[dict, dict]:
    card = json.loads((model_repo / NAME / "card.json").read_text())
    measured = card["diagnostics"]
    request = {key: measured[key] for key in ("n", "seed", "steps", "sampler")}
    return card, request


def test_card_diagnostics_reproduce_through_samples_and_diagnostics(client, model_repo):
    """Draw with the card's request, upload the samples: the card's numbers, exactly."""
    card, request = card_and_request(model_repo)
    drawn = client.post(f"/v1/models/{NAME}/samples", json=request, headers=NPY)
    form = {"file": (io.BytesIO(drawn.data), "samples.npy"), "reference": card["reference"]}
    report = client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    expected = {k: v for k, v in card["diagnostics"].items() if k not in request}
    assert report.get_json() == expected


def test_diagnose_equals_the_card(client, model_repo):
    card, request = card_and_request(model_repo)
    report = client.post(f"/v1/models/{NAME}/diagnose", json=request).get_json()
    echoed = {"model": NAME, "version": 1, "seed": request["seed"], "network_evaluations": 35}
    expected = {k: v for k, v in card["diagnostics"].items() if k != "n"}
    assert report == {**expected, **echoed}


def test_npy_samples_equal_json_samples(client):
    body = {"n": 6, "seed": 4}
    as_json = np.asarray(draw(client, **body)["samples"], dtype=np.float32)
    response = client.post(
        f"/v1/models/{NAME}/samples", json=body, headers={"Accept": "application/x-npy"}
    )
    assert response.headers["X-Steps"] == "18" and response.headers["X-Sampler"] == "heun"
    np.testing.assert_array_equal(np.load(io.BytesIO(response.data)), as_json)


def infer_body(x: np.ndarray, sigma: np.ndarray) -> dict:
    tensors = (("x", x), ("sigma", sigma))
    inputs = [
        {"name": n, "shape": list(a.shape), "datatype": "FP32", "data": a.ravel().tolist()}
        for n, a in tensors
    ]
    return {"inputs": inputs}


def test_v2_exposes_the_raw_denoiser(client, model_repo):
    import onnxruntime

    metadata = client.get(f"/v2/models/{NAME}").get_json()
    assert [t["name"] for t in metadata["inputs"]] == ["x", "sigma"]
    assert metadata["inputs"][1]["shape"] == [-1] and metadata["outputs"][0]["name"] == "denoised"
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    sigma = np.array([0.01, 1.0, 10.0], dtype=np.float32)
    response = client.post(f"/v2/models/{NAME}/infer", data=json.dumps(infer_body(x, sigma)))
    assert response.status_code == 200, response.get_json()
    output = response.get_json()["outputs"][0]
    session = onnxruntime.InferenceSession(
        str(model_repo / NAME / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"x": x, "sigma": sigma})[0]
    assert output["name"] == "denoised" and output["shape"] == [3, 2]
    np.testing.assert_array_equal(np.asarray(output["data"], np.float32).reshape(3, 2), expected)


@pytest.mark.parametrize(
    ("sigma", "fragment"),
    [
        (np.array([1.0, 0.0, 1.0], np.float32), "'sigma' must be finite and > 0"),
        (np.array([1.0, 1.0], np.float32), "one batch size"),
        (np.ones((3, 1), np.float32), "'sigma' must be FP32 of shape [batch]"),
    ],
)
def test_v2_bad_denoiser_inputs_are_400(client, sigma, fragment):
    x = np.zeros((3, 2), np.float32)
    response = client.post(f"/v2/models/{NAME}/infer", data=json.dumps(infer_body(x, sigma)))
    assert response.status_code == 400 and fragment in response.get_json()["error"]
