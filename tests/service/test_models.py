"""GET /v1/models, POST /v1/models/{name}/samples."""

import io

import numpy as np
import pytest

PROBLEM = "application/problem+json"


def test_list_models_reports_provider_and_card(client):
    models = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert set(models) == {"ring8-gan", "grid25-edm"}
    gan = models["ring8-gan"]
    assert gan["ready"] and gan["provider"] == "CPUExecutionProvider"
    assert gan["card"]["reference"] == "ring8" and gan["versions"] == [1]


def test_compact_listing_has_no_cards(client):
    full = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    compact = client.get("/v1/models?view=compact").get_json()["models"]
    assert [m["name"] for m in compact] == list(full)
    for model in compact:
        assert list(model) == ["name", "kind", "ready", "versions", "provider"]
        assert model == {key: full[model["name"]][key] for key in model}
    assert client.get("/v1/models?view=full").get_json()["models"] == list(full.values())


def test_unknown_listing_view_is_400(client):
    response = client.get("/v1/models?view=tiny")
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert "compact" in response.get_json()["detail"]


def test_get_unknown_model_is_404_problem(client):
    response = client.get("/v1/models/nope")
    assert response.status_code == 404 and response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == 404 and body["error"] == body["detail"] and "nope" in body["detail"]


def test_reference_is_not_a_model(client):
    assert client.get("/v1/models/ring8").status_code == 404


def test_samples_json_shape_and_seed(client):
    response = client.post("/v1/models/ring8-gan/samples", json={"n": 5, "seed": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert body["shape"] == [5, 2] and np.asarray(body["samples"]).shape == (5, 2)
    assert body["seed"] == 3 and response.headers["X-Seed"] == "3"


def test_same_seed_same_samples(client):
    first, second, other = (
        client.post("/v1/models/ring8-gan/samples", json={"n": 64, "seed": seed}).get_json()
        for seed in (7, 7, 8)
    )
    assert first["samples"] == second["samples"]
    assert first["samples"] != other["samples"]


def test_batch_split_does_not_change_samples(model_repo):
    from service.app import create_app
    from tests.helpers import make_config

    answers = []
    for max_batch in (3, 8192):
        client = create_app(make_config(model_repo, max_batch=max_batch)).test_client()
        answers.append(client.post("/v1/models/ring8-gan/samples", json={"n": 10, "seed": 1}))
    assert answers[0].get_json()["samples"] == answers[1].get_json()["samples"]


def test_samples_npy_matches_json(client):
    body = {"n": 16, "seed": 11}
    as_json = client.post("/v1/models/ring8-gan/samples", json=body).get_json()
    response = client.post(
        "/v1/models/ring8-gan/samples", json=body, headers={"Accept": "application/x-npy"}
    )
    assert response.mimetype == "application/x-npy"
    array = np.load(io.BytesIO(response.data), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (16, 2)
    np.testing.assert_array_equal(array, np.asarray(as_json["samples"], dtype=np.float32))


def test_samples_without_body_uses_defaults(client, app):
    response = client.post("/v1/models/ring8-gan/samples")
    assert response.status_code == 200
    assert response.get_json()["shape"][0] == app.config["SERVICE"].default_samples


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"n": 0}, "'n' must be between 1"),
        ({"n": 10**9}, "'n' must be between 1 and"),
        ({"n": "5"}, "'n' must be an integer"),
        ({"n": True}, "'n' must be an integer"),
        ({"n": 2.5}, "'n' must be an integer"),
        ({"seed": -1}, "'seed' must be between 0"),
        ({"steps": 5}, "'steps': for score models only"),
        ({"colour": 5}, "unknown field(s) colour"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_sample_requests_are_400(client, body, fragment):
    response = client.post("/v1/models/ring8-gan/samples", json=body)
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert fragment in response.get_json()["detail"]


def test_malformed_json_is_400(client):
    response = client.post(
        "/v1/models/ring8-gan/samples", data=b"{n: 5", content_type="application/json"
    )
    assert response.status_code == 400 and "not valid JSON" in response.get_json()["detail"]


def test_unknown_version_is_404(client):
    response = client.post("/v1/models/ring8-gan/samples", json={"n": 1, "version": 9})
    assert response.status_code == 404 and "no version 9" in response.get_json()["detail"]


def test_unacceptable_format_is_406(client):
    response = client.post(
        "/v1/models/ring8-gan/samples", json={"n": 1}, headers={"Accept": "image/gif"}
    )
    assert response.status_code == 406 and response.mimetype == PROBLEM


def test_wrong_method_is_405_problem(client):
    response = client.get("/v1/models/ring8-gan/samples")
    assert response.status_code == 405 and response.mimetype == PROBLEM
    assert "POST" in response.headers["Allow"]


def test_random_seeds_are_exact_in_javascript(client):
    """A drawn seed is below 2^53, so a JavaScript client (a JSON number is a double) reads it
    back exactly and reproduces the samples."""
    seeds = [
        client.post("/v1/models/ring8-gan/samples", json={"n": 1}).get_json()["seed"]
        for _ in range(40)
    ]
    assert all(0 <= seed < 2**53 for seed in seeds), seeds
    assert len(set(seeds)) == len(seeds)


def test_seeds_above_2_53_are_still_accepted_and_reproduce(client):
    """Seeds drawn before the 2^53 bound (up to 2^63 - 1) still give their samples."""
    from lab.noise import MAX_SEED

    seed = MAX_SEED
    first, second = (
        client.post("/v1/models/ring8-gan/samples", json={"n": 8, "seed": seed}) for _ in range(2)
    )
    assert first.status_code == 200 and first.get_json()["seed"] == seed
    assert first.get_json()["samples"] == second.get_json()["samples"]
    rejected = client.post("/v1/models/ring8-gan/samples", json={"n": 1, "seed": MAX_SEED + 1})
    assert rejected.status_code == 400


@pytest.mark.parametrize("accept", ["application/json", "image/png"])
@pytest.mark.parametrize("name", ["ring8-gan", "grid25-edm"])
def test_diagnose_carries_the_request_headers(client, name, accept):
    """Every /diagnose answer, the figure included, names its seed and version (and a score
    model's steps and sampler), as the samples answers do."""
    body = {"n": 200, "seed": 5} | ({"steps": 4} if name == "grid25-edm" else {})
    response = client.post(f"/v1/models/{name}/diagnose", json=body, headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == accept
    assert response.headers["X-Seed"] == "5" and response.headers["X-Model-Version"] == "1"
    if name == "grid25-edm":
        assert response.headers["X-Steps"] == "4" and response.headers["X-Sampler"] == "heun"
    else:
        assert "X-Steps" not in response.headers and "X-Sampler" not in response.headers
