"""Reliability fixtures: a one-worker gunicorn on the tiny repository (memory is per worker)."""

from pathlib import Path

import pytest

from bench.server import running_server


@pytest.fixture(scope="module")
def one_worker(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """(url, master process, data folder) of a 1-worker gunicorn."""
    folder = tmp_path_factory.mktemp("reliability")
    with running_server(
        model_repo, folder / "log.txt", WEB_CONCURRENCY="1", DATA_DIR=str(folder / "data")
    ) as (url, process):
        yield url, process, folder / "data"
