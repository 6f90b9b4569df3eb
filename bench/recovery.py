"""Benchmark: how long the real gunicorn takes to serve the bundled models, from a cold start
and after its worker is killed with SIGKILL.

    python -m bench.recovery                      # bundled models, 3 trials
    python -m bench.recovery --models DIR --trials 5

One worker (WEB_CONCURRENCY=1), so that nothing answers while the replacement loads: the time
after the kill is gunicorn noticing the dead worker, forking a new one, and that worker
importing the service and loading (and warming up) every model of the repository. A trial
ends at the first 64-sample request to `--model` answered 200. Prints a markdown table.
"""

import argparse
import os
import signal
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.server import running_server, worker_pids
from service.config import REPO_MODELS


def seconds_until_served(url: str, model: str, limit: float) -> float:
    """Seconds until POST /v1/models/{model}/samples answers 200; TimeoutError after limit."""
    request = urllib.request.Request(
        f"{url}/v1/models/{model}/samples", b'{"n": 64}', {"Content-Type": "application/json"}
    )
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{model} not served within {limit} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=REPO_MODELS)
    parser.add_argument("--model", default="ring8-gan", help="the model requested")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before giving up")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="recovery-"))
    settings = {"WEB_CONCURRENCY": "1", "ACCESS_LOG": "/dev/null", "DATA_DIR": str(folder)}
    cold, after_kill = [], []
    for trial in range(args.trials):
        started = time.monotonic()
        with running_server(args.models, folder / f"gunicorn{trial}.log", **settings) as (
            url,
            process,
        ):
            cold.append(time.monotonic() - started)  # running_server waits for /readyz
            (victim,) = worker_pids(process.pid)
            os.kill(victim, signal.SIGKILL)
            after_kill.append(seconds_until_served(url, args.model, args.limit))
            assert worker_pids(process.pid) != [victim]
    models = sorted(p.parent.name for p in args.models.glob("*/card.json"))
    print(f"\n{args.models} ({len(models)} entries), 1 worker, {os.cpu_count()} CPUs\n")
    print("| event | trials | median s | min s | max s |")
    print("|---|---|---|---|---|")
    for label, times in (("cold start to /readyz 200", cold), ("SIGKILL to a 200", after_kill)):
        cells = [statistics.median(times), min(times), max(times)]
        print(f"| {label} | {len(times)} | " + " | ".join(f"{t:.2f}" for t in cells) + " |")


if __name__ == "__main__":
    main()
