"""LOG_FORMAT=json and the W3C traceparent (service/logs.py, service/middleware.py)."""

import io
import json
import logging
import time

import pytest
import requests

from bench.server import running_server
from service.app import configure_logging, create_app
from service.config import ServiceConfig
from tests.helpers import make_config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def json_app(model_repo):
    """An app logging JSON, its `service` handler writing to a StringIO; text again after."""
    app = create_app(make_config(model_repo, log_format="json"))
    stream = io.StringIO()
    logging.getLogger("service").handlers[0].setStream(stream)
    yield app, stream
    configure_logging("INFO")  # the text handler back for the tests that follow


def test_json_record_made_while_serving_has_the_request_and_trace(json_app):
    app, stream = json_app
    headers = {"X-Request-ID": "rid-7", "traceparent": TRACEPARENT}
    with app.test_request_context("/v1/models", method="POST", headers=headers):
        app.preprocess_request()
        logging.getLogger("service.api").warning("drawing %d samples", 5)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "drawing 5 samples" and record["level"] == "WARNING"
    assert record["logger"] == "service.api" and isinstance(record["pid"], int)
    assert record["time"].endswith("+00:00")
    assert record["request_id"] == "rid-7" and record["trace_id"] == TRACE_ID
    assert record["method"] == "POST" and record["path"] == "/v1/models"


def test_json_record_outside_a_request_has_no_request_fields(json_app):
    _, stream = json_app
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("lab.runtime").exception("failed")
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["logger"] == "lab.runtime" and "request_id" not in record
    assert "RuntimeError: boom" in record["exception"]


def test_traceparent_is_continued_in_the_response(client):
    response = client.get("/healthz", headers={"traceparent": TRACEPARENT})
    version, trace_id, span_id, flags = response.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert len(span_id) == 16 and span_id != "00f067aa0ba902b7" and span_id != "0" * 16


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID}-00f067aa0ba902b7-1",
    ],
)
def test_invalid_traceparent_is_ignored(client, value):
    response = client.get("/healthz", headers={"traceparent": value})
    assert response.status_code == 200 and "traceparent" not in response.headers


def test_log_format_setting():
    assert ServiceConfig.from_env({}).log_format == "text"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        ServiceConfig.from_env({"LOG_FORMAT": "yaml"})


def test_gunicorn_writes_json_lines(model_repo, tmp_path):
    """The real gunicorn with LOG_FORMAT=json: every line of its output parses, the app's and
    gunicorn's records alike, and the access line has the request's fields."""
    log = tmp_path / "log.txt"
    with running_server(
        model_repo, log, LOG_FORMAT="json", WEB_CONCURRENCY="1", DATA_DIR=str(tmp_path / "data")
    ) as (url, _):
        headers = {"X-Request-ID": "json-9", "traceparent": TRACEPARENT}
        requests.get(f"{url}/v1/models?view=compact", headers=headers, timeout=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "json-9" not in log.read_text():
            time.sleep(0.1)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loggers = {record["logger"] for record in records}
    assert {"service.repository", "gunicorn.error", "gunicorn.access"} <= loggers
    (access,) = [r for r in records if r.get("request_id") == "json-9"]
    assert access["logger"] == "gunicorn.access" and access["trace_id"] == TRACE_ID
    assert (access["method"], access["path"], access["status"]) == ("GET", "/v1/models", 200)
    assert access["duration_ms"] >= 0
