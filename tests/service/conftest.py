"""Service fixtures: the real gunicorn, started once per module on a free loopback port."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.server import running_server


@contextmanager
def serving(
    models: Path, tmp_path_factory: pytest.TempPathFactory, ready_path: str = "/readyz"
) -> Iterator[str]:
    """The url of a 2-worker gunicorn serving `models`, with its own log and data folder."""
    folder = tmp_path_factory.mktemp("gunicorn")
    with running_server(
        models, folder / "log.txt", ready_path, WEB_CONCURRENCY="2", DATA_DIR=str(folder / "data")
    ) as (url, _):
        yield url


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """(url, master process, log file path) of a 2-worker gunicorn serving the tiny repository."""
    folder = tmp_path_factory.mktemp("gunicorn")
    with running_server(
        model_repo, folder / "log.txt", WEB_CONCURRENCY="2", DATA_DIR=str(folder / "data")
    ) as (url, process):
        yield url, process, folder / "log.txt"
