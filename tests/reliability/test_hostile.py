"""Hostile uploads against the real gunicorn: a clear 4xx within a second, nothing lost."""

import pytest
import requests

from bench.hostile import cases, run_case
from bench.server import rss_bytes, worker_pids

CASES = cases()
MEMORY_GROWTH_LIMIT = 50 * 2**20


@pytest.fixture(scope="module")
def baseline_rss(one_worker) -> int:
    url, process, _ = one_worker
    requests.post(f"{url}/v1/models/ring8-gan/samples", json={"n": 10}, timeout=10)  # warm
    return rss_bytes(worker_pids(process.pid)[0])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input_gets_a_fast_problem(one_worker, baseline_rss, case):
    outcome = run_case(one_worker[0], case)
    assert outcome.status == case.expected
    assert outcome.problem, "answer is not problem+json with an error member"
    assert outcome.seconds < 1.0


def test_worker_survives_with_bounded_memory(one_worker, baseline_rss):
    """Runs after the cases (same module, same worker): same process, little growth, healthy."""
    url, process, data = one_worker
    for case in CASES:  # a second round: growth must not accumulate
        run_case(url, case)
    worker = worker_pids(process.pid)
    assert len(worker) == 1
    assert rss_bytes(worker[0]) - baseline_rss < MEMORY_GROWTH_LIMIT
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert (
        requests.post(f"{url}/v1/models/ring8-gan/samples", json={"n": 3}, timeout=10).status_code
        == 200
    )


def test_nothing_is_written_outside_the_data_folder(one_worker, tmp_path):
    """The path-traversal zip and every other upload leave no file behind anywhere we can see."""
    url, _, data = one_worker
    for case in CASES:
        run_case(url, case)
    stray = [path for path in data.rglob("*") if path.is_file()]
    assert stray == []
    assert not any(path.name == "evil.png" for path in tmp_path.parents[1].rglob("evil.png"))
