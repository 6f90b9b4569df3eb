"""gzip of JSON and NPY answers when the client accepts it (service/compression.py)."""

import gzip
import io
import json

import numpy as np
import pytest

from service.app import create_app
from tests.helpers import make_config
from tests.service.test_kserve import binary_request

SAMPLES = "/v1/models/ring8-gan/samples"
BODY = {"n": 200, "seed": 3}


@pytest.mark.parametrize("accept", ["application/json", "application/x-npy"])
def test_gzip_answer_decompresses_to_the_plain_answer(client, accept):
    plain = client.post(SAMPLES, json=BODY, headers={"Accept": accept})
    packed = client.post(
        SAMPLES, json=BODY, headers={"Accept": accept, "Accept-Encoding": "br, gzip;q=0.8"}
    )
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert (
        "Accept-Encoding" in plain.headers["Vary"] and "Accept-Encoding" in packed.headers["Vary"]
    )
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data)
    assert gzip.decompress(packed.data) == plain.data
    if accept == "application/x-npy":
        np.load(io.BytesIO(gzip.decompress(packed.data)), allow_pickle=False)


@pytest.mark.parametrize("encoding", ["gzip;q=0", "identity", "deflate", "*;q=1, gzip;q=0", ""])
def test_gzip_only_when_the_request_allows_it(client, encoding):
    response = client.post(SAMPLES, json=BODY, headers={"Accept-Encoding": encoding})
    assert "Content-Encoding" not in response.headers
    assert len(response.get_json()["samples"]) == 200


def test_star_allows_gzip(client):
    response = client.post(SAMPLES, json=BODY, headers={"Accept-Encoding": "*"})
    assert response.headers["Content-Encoding"] == "gzip"


def test_small_answers_and_problems_below_the_threshold_are_plain(client):
    small = client.post(SAMPLES, json={"n": 2}, headers={"Accept-Encoding": "gzip"})
    problem = client.get("/v1/models/nope", headers={"Accept-Encoding": "gzip"})
    for response in (small, problem):
        assert "Content-Encoding" not in response.headers and "Vary" not in response.headers


def test_large_problem_json_is_compressed(model_repo):
    app = create_app(make_config(model_repo, gzip_min_bytes=16))
    response = app.test_client().get("/v1/models/nope", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 404 and response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.data))["type"] == "/problems/unknown-model"


def test_png_is_never_compressed(client):
    response = client.post(
        "/v1/models/ring8-gan/diagnose",
        json={"n": 200, "seed": 1},
        headers={"Accept": "image/png", "Accept-Encoding": "gzip"},
    )
    assert response.mimetype == "image/png" and "Content-Encoding" not in response.headers


def test_binary_v2_answer_is_sent_as_it_is(client):
    z = np.zeros((400, 2), np.float32)
    data, headers = binary_request(z)
    response = client.post(
        "/v2/models/ring8-gan/infer", data=data, headers={**headers, "Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in response.headers
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.data[:length])
    assert len(response.data) - length == header["outputs"][0]["parameters"]["binary_data_size"]


def test_json_v2_answer_is_compressed_whole(client):
    z = np.zeros((400, 2), np.float32)
    body = {"inputs": [{"name": "z", "shape": [400, 2], "datatype": "FP32", "data": z.tolist()}]}
    response = client.post(
        "/v2/models/ring8-gan/infer", data=json.dumps(body), headers={"Accept-Encoding": "gzip"}
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Inference-Header-Content-Length" not in response.headers
    assert json.loads(gzip.decompress(response.data))["outputs"][0]["shape"] == [400, 2]


def test_gzip_off(model_repo):
    app = create_app(make_config(model_repo, gzip="off"))
    response = app.test_client().post(SAMPLES, json=BODY, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers and "Vary" not in response.headers


def test_gzip_setting_is_validated():
    from service.config import ServiceConfig

    assert ServiceConfig.from_env({}).gzip == "on"
    assert ServiceConfig.from_env({"GZIP": "off"}).gzip == "off"
    with pytest.raises(ValueError, match="GZIP"):
        ServiceConfig.from_env({"GZIP": "yes"})
