"""Open Inference Protocol under /v2: Flask-level checks and the real tritonclient."""

import json

import numpy as np
import pytest

from lab.noise import gaussian_latents

PROBLEM = "application/problem+json"


def binary_request(z: np.ndarray, request_id: str = "r1", binary_output: bool = True):
    header = {
        "id": request_id,
        "inputs": [
            {
                "name": "z",
                "shape": list(z.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": z.nbytes},
            }
        ],
        "outputs": [{"name": "samples", "parameters": {"binary_data": binary_output}}],
    }
    encoded = json.dumps(header).encode()
    return encoded + z.tobytes(), {"Inference-Header-Content-Length": str(len(encoded))}


def expected_samples(client, z: np.ndarray) -> np.ndarray:
    """What /v1 gives for the same latents (seeded there, so compare via the same seed)."""
    return np.asarray(
        client.post("/v1/models/ring8-gan/samples", json={"n": len(z), "seed": 4}).get_json()[
            "samples"
        ],
        dtype=np.float32,
    )


def test_server_metadata(client):
    body = client.get("/v2").get_json()
    assert body["name"] == "collapse-lab" and "binary_tensor_data" in body["extensions"]


def test_model_metadata(client):
    body = client.get("/v2/models/ring8-gan").get_json()
    assert body["versions"] == ["1"] and body["platform"] == "onnxruntime_onnx"
    assert body["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 2]}]
    assert client.get("/v2/models/ring8-gan/versions/1/ready").status_code == 200


def test_infer_json_equals_v1_samples(client):
    z = gaussian_latents(6, 2, 4)
    body = {
        "id": "abc",
        "inputs": [{"name": "z", "shape": [6, 2], "datatype": "FP32", "data": z.ravel().tolist()}],
    }
    response = client.post("/v2/models/ring8-gan/infer", data=json.dumps(body))
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["id"] == "abc" and answer["model_version"] == "1"
    output = answer["outputs"][0]
    assert output["shape"] == [6, 2] and output["datatype"] == "FP32"
    np.testing.assert_array_equal(
        np.asarray(output["data"], np.float32).reshape(6, 2), expected_samples(client, z)
    )


def test_infer_binary_round_trip(client):
    z = gaussian_latents(6, 2, 4)
    data, headers = binary_request(z)
    response = client.post("/v2/models/ring8-gan/infer", data=data, headers=headers)
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.data[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 6 * 2 * 4
    samples = np.frombuffer(response.data[length:], dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(samples, expected_samples(client, z))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda h: h["inputs"][0].update(datatype="BYTES"), "datatype"),
        (lambda h: h["inputs"][0].update(shape=[3, 2]), "binary_data_size"),
        (lambda h: h["inputs"][0].update(name="x"), "takes the input(s) ['z']"),
        (lambda h: h["outputs"][0].update(name="y"), "unknown output"),
        (lambda h: h.pop("inputs"), "'inputs'"),
    ],
)
def test_bad_infer_requests_are_400_with_error(client, mutate, fragment):
    z = gaussian_latents(6, 2, 4)
    data, headers = binary_request(z)
    length = int(headers["Inference-Header-Content-Length"])
    header = json.loads(data[:length])
    mutate(header)
    encoded = json.dumps(header).encode()
    response = client.post(
        "/v2/models/ring8-gan/infer",
        data=encoded + data[length:],
        headers={"Inference-Header-Content-Length": str(len(encoded))},
    )
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert fragment in response.get_json()["error"]


def test_wrong_latent_width_is_400(client):
    body = {"inputs": [{"name": "z", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
    response = client.post("/v2/models/ring8-gan/infer", data=json.dumps(body))
    assert response.status_code == 400 and "[batch, 2]" in response.get_json()["error"]


def test_unknown_model_is_404(client):
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/ring8-gan/versions/7").status_code == 404


def test_tritonclient_works_unchanged(server):
    http = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    url, _, _ = server
    client = http.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("ring8-gan")
    assert client.get_model_metadata("ring8-gan")["inputs"][0]["name"] == "z"
    z = gaussian_latents(32, 2, 9)
    results = []
    for binary in (True, False):
        tensor = http.InferInput("z", list(z.shape), "FP32")
        tensor.set_data_from_numpy(z, binary_data=binary)
        output = http.InferRequestedOutput("samples", binary_data=binary)
        result = client.infer("ring8-gan", [tensor], outputs=[output], request_id="q7")
        assert result.get_response()["id"] == "q7"
        results.append(result.as_numpy("samples"))
    np.testing.assert_array_equal(results[0], results[1])
    assert results[0].shape == (32, 2)
    with pytest.raises(InferenceServerException, match="no model named 'nope'"):
        client.infer("nope", [tensor])
    client.close()


def test_tritonclient_reads_gzip_answers(server):
    """tritonclient's response_compression_algorithm="gzip" sends Accept-Encoding: gzip: a JSON
    answer comes back compressed as a whole, a binary one as it is, and both decode."""
    http = pytest.importorskip("tritonclient.http")

    url, _, _ = server
    client = http.InferenceServerClient(url.removeprefix("http://"))
    z = gaussian_latents(500, 2, 9)
    results = []
    for binary in (True, False):
        tensor = http.InferInput("z", list(z.shape), "FP32")
        tensor.set_data_from_numpy(z, binary_data=binary)
        output = http.InferRequestedOutput("samples", binary_data=binary)
        result = client.infer(
            "ring8-gan", [tensor], outputs=[output], response_compression_algorithm="gzip"
        )
        results.append(result.as_numpy("samples"))
    np.testing.assert_array_equal(results[0], results[1])
    index = client.get_model_repository_index()
    assert {"name": "ring8-gan", "version": "1", "state": "READY", "reason": ""} in index
    client.close()


def test_repository_index_lists_the_served_versions(client):
    response = client.post("/v2/repository/index")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert sorted(response.get_json(), key=lambda m: m["name"]) == [
        {"name": "grid25-edm", "version": "1", "state": "READY", "reason": ""},
        {"name": "ring8-gan", "version": "1", "state": "READY", "reason": ""},
    ]


def test_repository_index_names_unavailable_models_and_filters_ready(repo_copy):
    from service.app import create_app
    from tests.helpers import make_config

    (repo_copy / "ring8-gan/1/model.onnx").write_bytes(b"junk")
    client = create_app(make_config(repo_copy)).test_client()
    index = {m["name"]: m for m in client.post("/v2/repository/index").get_json()}
    assert index["ring8-gan"]["state"] == "UNAVAILABLE" and index["ring8-gan"]["reason"]
    assert index["grid25-edm"]["state"] == "READY"
    ready = client.post("/v2/repository/index", json={"ready": True}).get_json()
    assert [m["name"] for m in ready] == ["grid25-edm"]


@pytest.mark.parametrize("body", [{"ready": "yes"}, {"nope": 1}, [1]])
def test_bad_repository_index_body_is_400(client, body):
    response = client.post("/v2/repository/index", json=body)
    assert response.status_code == 400 and response.mimetype == PROBLEM


@pytest.mark.parametrize("action", ["load", "unload"])
def test_load_and_unload_are_refused_with_a_problem(client, action):
    response = client.post(f"/v2/repository/models/ring8-gan/{action}")
    assert response.status_code == 405 and response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == "/problems/read-only-repository"
    assert "fixed" in body["error"] and action in body["error"]


def test_health_live_and_ready_answer_json(client):
    live, ready = client.get("/v2/health/live"), client.get("/v2/health/ready")
    assert live.status_code == 200 and live.mimetype == "application/json"
    assert ready.status_code == 200 and ready.mimetype == "application/json"
    assert live.get_json() == {"live": True} and ready.get_json() == {"ready": True}


def test_health_ready_is_503_json_when_a_model_is_not_ready(repo_copy):
    from service.app import create_app
    from tests.helpers import make_config

    (repo_copy / "ring8-gan/1/model.onnx").write_bytes(b"junk")
    response = create_app(make_config(repo_copy)).test_client().get("/v2/health/ready")
    assert response.status_code == 503 and response.mimetype == "application/json"
    assert response.get_json() == {"ready": False}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/ring8-gan/stats",
        "/v2/systemsharedmemory/status",
        "/v2/cudasharedmemory/status",
        "/v2/trace/setting",
        "/v2/logging",
        "/v1/nope",
        "/nope",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_routes_are_404_problems_naming_the_route(client, path, method):
    """Triton extensions other than the repository index (served read-only, above)."""
    response = client.open(path, method=method)
    assert response.status_code == 404 and response.mimetype == PROBLEM
    body = response.get_json()
    assert body["error"] == body["detail"] and f"{method} {path}" in body["detail"]
    assert "/docs" in body["detail"]


def test_wrong_method_is_405_problem_naming_the_allowed_ones(client):
    response = client.delete("/v2/health/ready")
    assert response.status_code == 405 and response.mimetype == PROBLEM
    body = response.get_json()
    assert "DELETE" in body["error"] and "GET" in body["error"] and body["error"] == body["detail"]
    assert "GET" in response.headers["Allow"]


def test_root_redirects_to_the_docs(client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/docs")


@pytest.mark.parametrize(
    "path",
    ["/v1/models/ring8-gan/samples", "/v2/repository/index", "/v2/models/ring8-gan/infer"],
)
def test_deeply_nested_json_bodies_are_400(client, path):
    """Python's JSON decoder recurses per nesting level: 100,000 levels were a 500."""
    response = client.post(path, data=b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400 and "nested too deeply" in response.get_json()["detail"]
