"""Faults against the real gunicorn: a killed worker, a graceful stop, a broken model."""

import io
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from bench.server import running_server, worker_pids

RECOVERY_LIMIT_S = 5.0


def hammer(url: str, stop: threading.Event, statuses: list) -> None:
    """Small sample requests in a loop until `stop`; records status codes (or 'error')."""
    with requests.Session() as session:
        while not stop.is_set():
            try:
                response = session.post(
                    f"{url}/v1/models/ring8-gan/samples", json={"n": 64}, timeout=10
                )
                statuses.append(response.status_code)
            except requests.RequestException:
                statuses.append("error")


def wait_for_samples(url: str, seconds: float) -> float:
    """Seconds until a sample request succeeds again (raises after `seconds`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            response = requests.post(f"{url}/v1/models/ring8-gan/samples", json={"n": 4}, timeout=1)
            if response.status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no successful request within {seconds} s")


def test_killed_worker_is_replaced_under_load(model_repo: Path, tmp_path: Path):
    with running_server(
        model_repo, tmp_path / "log.txt", WEB_CONCURRENCY="1", DATA_DIR=str(tmp_path)
    ) as (url, process):
        stop, statuses = threading.Event(), []
        clients = [threading.Thread(target=hammer, args=(url, stop, statuses)) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(1.0)
        (victim,) = worker_pids(process.pid)
        os.kill(victim, signal.SIGKILL)
        recovery = wait_for_samples(url, RECOVERY_LIMIT_S)
        time.sleep(0.5)
        stop.set()
        for client in clients:
            client.join()
        assert worker_pids(process.pid) != [victim]
    assert recovery < RECOVERY_LIMIT_S
    assert statuses.count(200) > 50
    assert set(statuses) <= {200, 503, "error"}  # only the guard's 503s and the killed sockets


def test_sigterm_drains_in_flight_requests(model_repo: Path, tmp_path: Path):
    """A diagnosis running when SIGTERM arrives still completes with 200. The signal is sent
    once /metrics shows the diagnosis computing (http_requests_in_flight), and the batch is
    large enough for that to last about 2 s on a 2-core CPU."""
    rng = np.random.default_rng(0)
    reference, batch = rng.normal(size=(20_000, 2)), rng.normal(size=(40_000, 2)) * 1.5
    with running_server(
        model_repo,
        tmp_path / "log.txt",
        WEB_CONCURRENCY="1",
        GRACEFUL_TIMEOUT="60",
        DATA_DIR=str(tmp_path),
    ) as (url, process):
        post = requests.post(
            f"{url}/v1/references",
            data={"name": "wide"},
            files={"file": ("r.npy", npy_bytes(reference))},
            timeout=30,
        )
        assert post.status_code == 201
        payload, result = npy_bytes(batch), {}

        def slow_request() -> None:
            try:
                response = requests.post(
                    f"{url}/v1/diagnostics",
                    data={"reference": "wide"},
                    files={"file": ("b.npy", payload)},
                    timeout=90,
                )
                result["status"] = response.status_code
            except requests.RequestException as error:
                result["status"] = repr(error)
            result["finished"] = time.monotonic()

        request = threading.Thread(target=slow_request)
        request.start()
        deadline = time.monotonic() + 30
        while "http_requests_in_flight 1.0" not in requests.get(f"{url}/metrics", timeout=5).text:
            assert time.monotonic() < deadline and request.is_alive(), "never seen computing"
            time.sleep(0.02)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        request.join()
        process.wait(timeout=60)
    assert result["status"] == 200
    assert result["finished"] > signalled
    assert process.returncode == 0


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_corrupt_model_is_not_ready_and_the_rest_serve(model_repo: Path, tmp_path: Path):
    models = Path(shutil.copytree(model_repo, tmp_path / "models"))
    (models / "ring8-gan" / "1" / "model.onnx").write_bytes(b"\x08\x07garbage")
    shutil.copytree(models / "ring8-gan", models / "ring8-gan-2")
    (models / "ring8-gan-2" / "1" / "model.onnx").unlink()  # card without its file
    card = models / "ring8-gan-2" / "card.json"
    card.write_text(card.read_text().replace('"name": "ring8-gan"', '"name": "ring8-gan-2"'))
    with running_server(
        models,
        tmp_path / "log.txt",
        ready_path="/healthz",
        WEB_CONCURRENCY="1",
        DATA_DIR=str(tmp_path),
    ) as (url, _):
        time.sleep(1.0)  # /healthz answers before the worker has finished loading
        ready = requests.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert set(ready.json()["not_ready"]) == {"ring8-gan", "ring8-gan-2"}
        assert requests.get(f"{url}/v1/references/ring8", timeout=5).status_code == 200
        broken = requests.post(f"{url}/v1/models/ring8-gan/samples", json={"n": 1}, timeout=5)
        assert broken.status_code == 503 and "not ready" in broken.json()["error"]


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_server_stops_cleanly(model_repo: Path, tmp_path: Path, signal_name: str):
    with running_server(
        model_repo, tmp_path / "log.txt", WEB_CONCURRENCY="2", DATA_DIR=str(tmp_path)
    ) as (_, process):  # running_server returns once both workers are up
        process.send_signal(getattr(signal, signal_name))
        assert process.wait(timeout=15) == 0
