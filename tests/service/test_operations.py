"""Request ids, the optional API key, the concurrency guard and /metrics."""

import io
import threading
import time
from dataclasses import replace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.errors import ApiError
from service.guard import Guard
from tests.helpers import make_config

PROBLEM = "application/problem+json"


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_request_id_is_echoed_or_generated(client):
    echoed = client.get("/v1/models/nope", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    assert echoed.get_json()["request_id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["X-Request-ID"]) == 32


@pytest.fixture
def keyed_client(model_repo):
    return create_app(make_config(model_repo, api_key="s3cret")).test_client()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v2/health/live"])
def test_probes_need_no_key(keyed_client, path):
    assert keyed_client.get(path).status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic s3cret", "s3cret"])
def test_wrong_or_missing_key_is_401(keyed_client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = keyed_client.post("/v1/models/ring8-gan/samples", json={"n": 1}, headers=headers)
    assert response.status_code == 401 and response.mimetype == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_right_key_passes(keyed_client):
    response = keyed_client.post(
        "/v1/models/ring8-gan/samples", json={"n": 1}, headers={"Authorization": "Bearer s3cret"}
    )
    assert response.status_code == 200


def test_guard_refuses_beyond_the_limit_with_retry_after():
    guard = Guard(max_in_flight=1, deadline_s=5)
    release = threading.Event()
    worker = threading.Thread(target=guard.run, args=(release.wait,))
    worker.start()
    time.sleep(0.05)
    with pytest.raises(ApiError) as refused:
        guard.run(lambda: None)
    release.set()
    worker.join()
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert guard.run(lambda: 7) == 7  # the slot is free again


def test_guard_deadline_is_504_and_keeps_the_slot_until_done():
    guard = Guard(max_in_flight=1, deadline_s=0.05)
    release = threading.Event()
    with pytest.raises(ApiError) as late:
        guard.run(release.wait)
    assert late.value.status == 504
    with pytest.raises(ApiError) as busy:
        guard.run(lambda: None)
    assert busy.value.status == 503
    release.set()
    time.sleep(0.05)
    assert guard.run(lambda: 3) == 3


def test_metrics_move_after_requests(client):
    before = client.get("/metrics").get_data(as_text=True)
    client.post("/v1/models/ring8-gan/samples", json={"n": 10, "seed": 1})
    after = client.get("/metrics").get_data(as_text=True)
    labels = {"model": "ring8-gan", "version": "1"}
    assert (
        metric_value(after, "nv_inference_count", **labels)
        == metric_value(before, "nv_inference_count", **labels) + 10
    )
    route = {"route": "/v1/models/<name>/samples", "status": "200"}
    assert (
        metric_value(after, "http_requests_total", **route)
        == metric_value(before, "http_requests_total", **route) + 1
    )


def test_metrics_aggregate_over_gunicorn_workers(server):
    url, _, _ = server
    for seed in range(8):
        requests.post(f"{url}/v1/models/ring8-gan/samples", json={"n": 3, "seed": seed}, timeout=10)
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert metric_value(text, "nv_inference_count", model="ring8-gan") == 24
    assert (
        metric_value(
            text, "model_execution_provider", model="ring8-gan", provider="CPUExecutionProvider"
        )
        == 1
    )


class FailingSession:
    """Stands in for an onnxruntime session that runs out of device memory."""

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def run(self, *args, **kwargs):
        raise RuntimeError("CUDA failure 2: out of memory")


def test_runtime_failure_is_503_and_the_next_request_succeeds(app, client):
    entry = app.extensions["repository"].entries["ring8-gan"]
    real = entry.versions[1]
    entry.versions[1] = replace(real, session=FailingSession())
    try:
        failed = client.post("/v1/models/ring8-gan/samples", json={"n": 4})
    finally:
        entry.versions[1] = real
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
    assert "out of memory" in failed.get_json()["detail"]
    assert client.post("/v1/models/ring8-gan/samples", json={"n": 4}).status_code == 200


def test_upload_without_key_is_401(keyed_client):
    form = {"file": (io.BytesIO(b"0,0\n1,1\n"), "x.csv"), "reference": "ring8"}
    response = keyed_client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    assert response.status_code == 401 and response.get_json()["error"]


def test_bounded_work_runs_inline_and_still_takes_a_slot():
    guard = Guard(max_in_flight=1, deadline_s=5)
    assert guard.run(threading.get_ident, bounded=True) == threading.get_ident()
    release = threading.Event()
    worker = threading.Thread(target=guard.run, args=(release.wait,))
    worker.start()
    time.sleep(0.05)
    with pytest.raises(ApiError) as refused:
        guard.run(lambda: None, bounded=True)
    release.set()
    worker.join()
    assert refused.value.status == 503
