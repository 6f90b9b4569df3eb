"""Bounded load on loopback: every small samples request answers 200 (dynamic batching queues
them for a merged run instead of the guard's 503, service/batching.py).

Throughput and latency goals are measured by `python -m bench.load` (docs/performance.md),
not asserted here.
"""

import shutil
from pathlib import Path

import pytest

from bench.load import load_test
from bench.server import ROOT


def test_short_load_has_no_errors(model_repo: Path, tmp_path: Path):
    result = load_test(
        model_repo,
        "ring8-gan",
        64,
        8,
        3.0,
        "python",
        tmp_path / "log.txt",
        WEB_CONCURRENCY="2",
        DATA_DIR=str(tmp_path),
    )
    assert result.statuses[200] > 50
    assert set(result.statuses) == {200}


@pytest.mark.slow
def test_sixty_seconds_at_32_clients_has_no_errors(tmp_path: Path):
    client = "wrk" if shutil.which("wrk") else "python"
    result = load_test(
        ROOT / "models",
        "ring8-gan",
        64,
        32,
        60.0,
        client,
        tmp_path / "log.txt",
        WEB_CONCURRENCY="2",
        DATA_DIR=str(tmp_path),
    )
    assert result.statuses[200] > 1000
    assert set(result.statuses) == {200}  # no 503 with 32 clients
