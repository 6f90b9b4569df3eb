"""bench/peers.py's pure parts: the wrk output it reads (bench/load.py), the bodies it sends and
the answers it reads in each encoding (JSON and binary), the table it prints. The servers
themselves run only in the benchmark (their virtualenvs are not part of the test environment)."""

import base64
import io
import json
from collections import Counter

import numpy as np
import pytest

from bench.load import LoadResult, parse_wrk
from bench.peers import (
    ENCODINGS,
    PEERS,
    SERVICE_WIRES,
    Row,
    Wire,
    answer_samples,
    request_body,
    table,
)

SAMPLES = np.arange(12, dtype=np.float32).reshape(3, 2, 2) / 8


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


WRK_OUTPUT = """Running 20s test @ http://127.0.0.1:8000/v1/models/ring8-gan/samples
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.05ms    9.12ms 120.00ms   80.00%
  30000 requests in 20.00s, 80.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
STATUSES 200=29988,503=12
P50_US 19500
P99_US 48250
REQUESTS 30000
SECONDS 20.001000
"""


def test_wrk_output_is_parsed_with_statuses_percentiles_and_socket_errors():
    result = parse_wrk(WRK_OUTPUT)
    assert result.statuses == Counter({200: 29988, 503: 12, "socket error": 5})
    assert (result.p50_ms, result.p99_ms, result.seconds) == (19.5, 48.25, 20.001)


def test_wrk_output_without_socket_errors_counts_answers_only():
    result = parse_wrk(
        WRK_OUTPUT.replace("  Socket errors: connect 0, read 2, write 0, timeout 3\n", "")
    )
    assert result.statuses == Counter({200: 29988, 503: 12})


def test_v2_body_and_answer():
    body = json.loads(request_body(Wire("/infer", "v2", "V2"), 64, 7))
    assert body == {
        "inputs": [
            {"name": "n", "shape": [1, 1], "datatype": "INT64", "data": [64]},
            {"name": "seed", "shape": [1, 1], "datatype": "INT64", "data": [7]},
        ]
    }
    answer = {
        "outputs": [{"name": "samples", "shape": [1, 3, 2, 2], "data": SAMPLES.ravel().tolist()}]
    }
    np.testing.assert_array_equal(answer_samples("v2", json.dumps(answer).encode(), {}), SAMPLES)


def test_v2_binary_body_asks_for_binary_outputs_and_the_answer_reads_after_the_header():
    body = json.loads(request_body(Wire("/infer", "v2-binary", "V2 binary"), 64, 7))
    assert body["parameters"] == {"binary_data_output": True} and len(body["inputs"]) == 2
    raw = SAMPLES.astype("<f4").tobytes()
    output = {"name": "samples", "datatype": "FP32", "shape": [1, 3, 2, 2]}
    header = json.dumps({"outputs": [{**output, "parameters": {"binary_data_size": len(raw)}}]})
    headers = {"Inference-Header-Content-Length": str(len(header))}
    decoded = answer_samples("v2-binary", header.encode() + raw, headers)
    np.testing.assert_array_equal(decoded, SAMPLES)


def test_npy_answers_bare_and_in_a_v2_base64_bytes_output():
    np.testing.assert_array_equal(answer_samples("npy", npy(SAMPLES), {}), SAMPLES)
    packed = base64.b64encode(npy(SAMPLES)).decode()
    answer = {
        "outputs": [{"name": "samples", "datatype": "BYTES", "shape": [1, 1], "data": [packed]}]
    }
    decoded = answer_samples("v2-base64-npy", json.dumps(answer).encode(), {})
    np.testing.assert_array_equal(decoded, SAMPLES)


def test_a_pickled_npy_answer_is_refused():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        answer_samples("npy", buffer.getvalue(), {})


def test_json_body_with_the_wires_extra_members_and_answers_under_either_key():
    assert json.loads(request_body(SERVICE_WIRES[False], 64, 7)) == {"n": 64, "seed": 7}
    extra = Wire("/predict", "npy", "npy", extra=(("format", "npy"),))
    assert json.loads(request_body(extra, 64, 7)) == {"n": 64, "seed": 7, "format": "npy"}
    rows = [[0.1, -0.25], [1.5, 2.0]]
    expected = np.asarray(rows, np.float32)
    for key in ("samples", "predictions"):
        body = json.dumps({key: rows, "model": "m"}).encode()
        np.testing.assert_array_equal(answer_samples("json", body, {}), expected)


def test_every_server_has_a_json_and_a_binary_wire_in_a_known_encoding():
    wires = [SERVICE_WIRES[False], SERVICE_WIRES[True]]
    wires += [wire for peer in PEERS for wire in (peer.json, peer.binary)]
    assert all(wire.encoding in ENCODINGS for wire in wires)
    assert all(peer.json.encoding in ("json", "v2") for peer in PEERS)
    assert all(peer.binary.encoding not in ("json", "v2") for peer in PEERS)


def test_table_has_one_line_per_row_with_rates_errors_and_cpu():
    result = LoadResult("wrk", 10.0, Counter({200: 9_000, 503: 1_000}), 12.34, 56.78)
    row = Row("this service", "defaults", 4096, True, "NPY", result, 5.0, "exact")
    lines = table([row]).splitlines()
    assert len(lines) == 3 and lines[0].count("|") == lines[2].count("|") == 11
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    expected = ["this service", "defaults", "4,096", "NPY", "1,000", "12.3", "56.8", "1,000"]
    expected += ["0.50"]
    assert cells == expected + ["exact"]
