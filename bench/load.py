"""Load test on loopback: N concurrent clients POST small sample requests for D seconds.

    python -m bench.load                       # 60 s, 32 clients, 64-sample JSON, ring8-gan
    python -m bench.load --duration 10 --client python

Starts the real gunicorn (repo config) on the bundled models, drives it with `wrk` (Debian's
package, a C load generator that leaves the CPU to the server) or a Python client (threads with
keep-alive connections), and prints a table: requests/s, p50, p99 and the count per status.
The only acceptable failures are the concurrency guard's deliberate 503s.
"""

import argparse
import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.server import ROOT, running_server

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do table.insert(parts, status .. "=" .. count) end
  io.write("STATUSES " .. table.concat(parts, ",") .. "\\n")
  local p50, p99 = latency:percentile(50), latency:percentile(99)
  io.write(string.format("P50_US %%d\\nP99_US %%d\\n", p50, p99))
  io.write(string.format("REQUESTS %%d\\nSECONDS %%f\\n", summary.requests, summary.duration / 1e6))
end
"""


@dataclass
class LoadResult:
    client: str
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def ok_rate(self) -> float:
        return self.statuses.get(200, 0) / self.seconds


def run_wrk(url: str, body: str, clients: int, seconds: float, threads: int = 2) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % body)
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    values = dict(re.findall(r"^([A-Z0-9_]+) (.*)$", output, flags=re.M))
    statuses = Counter(
        {
            int(k): int(v)
            for k, v in (part.split("=") for part in values["STATUSES"].split(",") if part)
        }
    )
    return LoadResult(
        "wrk",
        float(values["SECONDS"]),
        statuses,
        int(values["P50_US"]) / 1e3,
        int(values["P99_US"]) / 1e3,
    )


def client_loop(
    host: str,
    port: int,
    path: str,
    body: bytes,
    deadline: float,
    latencies: list,
    statuses: Counter,
    lock: threading.Lock,
) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    mine, counts = [], Counter()
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            counts[response.status] += 1
        except (OSError, http.client.HTTPException):
            counts["connection error"] += 1
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=10)
        mine.append(time.perf_counter() - started)
    connection.close()
    with lock:
        latencies.extend(mine)
        statuses.update(counts)


def run_python(url: str, body: str, clients: int, seconds: float) -> LoadResult:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    latencies, statuses, lock = [], Counter(), threading.Lock()
    started = time.perf_counter()
    threads = [
        threading.Thread(
            target=client_loop,
            args=(
                host,
                int(port),
                path,
                body.encode(),
                started + seconds,
                latencies,
                statuses,
                lock,
            ),
        )
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (0.0, 0.0)
    return LoadResult("python", elapsed, statuses, float(p50), float(p99))


def load_test(
    models: Path,
    model: str,
    n: int,
    clients: int,
    seconds: float,
    client: str,
    log_path: Path,
    **settings: str,
) -> LoadResult:
    """Start gunicorn, drive it, stop it; the measured result."""
    body = json.dumps({"n": n, "seed": 1})
    with running_server(models, log_path, ACCESS_LOG="off", **settings) as (url, _):
        target = f"{url}/v1/models/{model}/samples"
        if client == "wrk":
            return run_wrk(target, body, clients, seconds)
        return run_python(target, body, clients, seconds)


def table(result: LoadResult, clients: int, n: int, workers: str) -> str:
    statuses = ", ".join(
        f"{status}: {count}" for status, count in sorted(result.statuses.items(), key=str)
    )
    columns = "client workers clients n seconds requests/s 200/s p50_ms p99_ms statuses".split()
    values = [
        result.client,
        workers,
        clients,
        n,
        f"{result.seconds:.1f}",
        f"{result.rate:.0f}",
        f"{result.ok_rate:.0f}",
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        statuses,
    ]
    return "\n".join(
        [
            "| " + " | ".join(c.replace("_", " ") for c in columns) + " |",
            "|" + "---|" * len(columns),
            "| " + " | ".join(str(v) for v in values) + " |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ring8-gan")
    parser.add_argument("--n", type=int, default=64, help="samples per request")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    parser.add_argument("--workers", default="2", help="gunicorn WEB_CONCURRENCY")
    parser.add_argument("--threads", default="8", help="gunicorn THREADS per worker")
    parser.add_argument("--max-in-flight", default="4", help="MAX_IN_FLIGHT per worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = load_test(
            ROOT / "models",
            args.model,
            args.n,
            args.clients,
            args.duration,
            args.client,
            Path(folder) / "gunicorn.log",
            WEB_CONCURRENCY=args.workers,
            THREADS=args.threads,
            MAX_IN_FLIGHT=args.max_in_flight,
            DATA_DIR=folder,
        )
    print(table(result, args.clients, args.n, f"{args.workers} x {args.threads} threads"))


if __name__ == "__main__":
    main()
