"""Service fixtures: the real gunicorn, started once per module on a free loopback port."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise TimeoutError("gunicorn did not become ready")


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    log = (tmp_path_factory.mktemp("gunicorn") / "log.txt").open("w+")
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DEVICE": "cpu",
           "MODEL_REPOSITORY": str(model_repo), "WEB_CONCURRENCY": "2",
           "GRACEFUL_TIMEOUT": "5"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, process)
        except (RuntimeError, TimeoutError) as error:
            log.flush()
            raise RuntimeError(f"{error}; log:\n{Path(log.name).read_text()[-3000:]}") from None
        yield url, process, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
