"""Start the real gunicorn with the repo's config on a free loopback port (benches and tests)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(
    url: str, process: subprocess.Popen, seconds: float = 60, path: str = "/readyz"
) -> None:
    """Poll `path` until it answers 200 (or the process dies, or `seconds` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server did not become ready within {seconds} s")


PID_MARK = r'\[(\d+)\] INFO|"pid": (\d+)[,}]'  # a text or a JSON log line's process id


def wait_workers_created(log_path: Path, master: subprocess.Popen, seconds: float = 120) -> None:
    """Wait until every worker of `master` has logged "app created" (its models loaded, its
    event loop next): /readyz answers as soon as one worker is ready, and the connections a
    load opens before the others are up all stay with that one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise RuntimeError(f"the server exited with {master.returncode}")
        if not Path(f"/proc/{master.pid}/task/{master.pid}/children").exists():
            return  # a kernel that does not list children: nothing to wait for
        created = [line for line in log_path.read_text().splitlines() if "app created" in line]
        pids = {int(text or json) for line in created for text, json in re.findall(PID_MARK, line)}
        workers = worker_pids(master.pid)
        if workers and pids.issuperset(workers):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the workers did not all start within {seconds} s")


@contextmanager
def running_server(
    models: Path,
    log_path: Path,
    ready_path: str = "/readyz",
    app: str | None = None,
    **settings: str,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(url, master process) of a gunicorn serving `models`; stopped with SIGTERM on exit.

    ready_path: polled until 200 before yielding (/healthz for a repository with broken
    models); app: another WSGI app ("module:name") under the same settings instead of the
    service; settings: extra environment (WEB_CONCURRENCY, THREADS, DATA_DIR, ...).
    """
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DEVICE": "cpu",
        "MODEL_REPOSITORY": str(models),
        "GRACEFUL_TIMEOUT": "5",
        **settings,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"]
            + ([app] if app else []),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_ready(url, process, path=ready_path)
                if app is None and env.get("LOG_LEVEL", "info").lower() in ("debug", "info"):
                    wait_workers_created(log_path, process)  # its lines are INFO
            except (RuntimeError, TimeoutError) as error:
                log.flush()
                raise RuntimeError(f"{error}; log:\n{log_path.read_text()[-3000:]}") from None
            yield url, process
        finally:
            stop(process)


def stop(process: subprocess.Popen, seconds: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_pids(master: int) -> list[int]:
    """PIDs of the gunicorn workers (the master's children), from /proc."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")
