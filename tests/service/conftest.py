"""Service fixtures: the real gunicorn, started once per module on a free loopback port."""

from pathlib import Path

import pytest

from bench.server import running_server


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """(url, master process, log file path) of a 2-worker gunicorn serving the tiny repository."""
    folder = tmp_path_factory.mktemp("gunicorn")
    with running_server(
        model_repo, folder / "log.txt", WEB_CONCURRENCY="2", DATA_DIR=str(folder / "data")
    ) as (url, process):
        yield url, process, folder / "log.txt"
