"""bench/peers.py's pure parts: the wrk output it reads (bench/load.py), the bodies it sends and
the answers it reads in each protocol, the table it prints. The servers themselves run only in
the benchmark (their virtualenvs are not part of the test environment)."""

import json
from collections import Counter

import numpy as np

from bench.load import LoadResult, parse_wrk
from bench.peers import Row, answer_samples, request_body, table

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
    body = json.loads(request_body("v2", 64, 7))
    assert body == {
        "inputs": [
            {"name": "n", "shape": [1, 1], "datatype": "INT64", "data": [64]},
            {"name": "seed", "shape": [1, 1], "datatype": "INT64", "data": [7]},
        ]
    }
    samples = np.arange(12, dtype=np.float32).reshape(3, 2, 2) / 8
    answer = {
        "outputs": [{"name": "samples", "shape": [1, 3, 2, 2], "data": samples.ravel().tolist()}]
    }
    np.testing.assert_array_equal(answer_samples("v2", answer), samples)


def test_json_body_and_answers_under_either_key():
    assert json.loads(request_body("json", 64, 7)) == {"n": 64, "seed": 7}
    rows = [[0.1, -0.25], [1.5, 2.0]]
    expected = np.asarray(rows, np.float32)
    for key in ("samples", "predictions"):
        np.testing.assert_array_equal(answer_samples("json", {key: rows, "model": "m"}), expected)


def test_table_has_one_line_per_row_with_rates_errors_and_cpu():
    result = LoadResult("wrk", 10.0, Counter({200: 9_000, 503: 1_000}), 12.34, 56.78)
    lines = table([Row("this service", "defaults", 4096, result, 5.0, "exact")]).splitlines()
    assert len(lines) == 3 and lines[0].count("|") == lines[2].count("|") == 10
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    expected = ["this service", "defaults", "4,096", "1,000", "12.3", "56.8", "1,000", "0.50"]
    assert cells == expected + ["exact"]
