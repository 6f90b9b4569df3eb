"""Load test on loopback: N concurrent clients POST small sample requests for D seconds.

    python -m bench.load                       # 60 s, 32 clients, 64-sample JSON, ring8-gan
    python -m bench.load --baseline            # the same, after a bare Flask app: the ceiling
    python -m bench.load --set BATCHING=off    # any other setting of the service
    python -m bench.load --duration 10 --client python

Starts the real gunicorn (repo config) on the bundled models, drives it with `wrk` (Debian's
package, a C load generator that leaves the CPU to the server) or a Python client (threads with
keep-alive connections), and prints a table: requests/s, p50, p99, the workers' CPU time per
request and the count per status. The only acceptable failures are 503s with Retry-After.
With --baseline it first drives bench/bare.py (Flask with no model, the same JSON; then Flask
doing the model's work and nothing else) under the same gunicorn settings, times the
generator's onnxruntime run alone, and prints the ceiling "Flask plus the model's compute" and
the service's share of it.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.server import ROOT, running_server, worker_pids
from lab import runtime
from lab.sampling import generator_drawer

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
    worker_cpu_s: float = 0.0  # CPU seconds the server's workers spent during the load
    runs: float = 0.0  # onnxruntime runs of the model (nv_inference_exec_count), 0 if unknown

    @property
    def cpu_ms(self) -> float:
        """Workers' CPU milliseconds per request answered (a cost that other jobs sharing
        the machine change less than they change the rate)."""
        return 1e3 * self.worker_cpu_s / max(self.requests, 1)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def ok_rate(self) -> float:
        return self.statuses.get(200, 0) / self.seconds


def run_wrk(
    url: str,
    body: str,
    clients: int,
    seconds: float,
    threads: int = 2,
    timeout_s: float = 2.0,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST `body` to `url` from `clients` keep-alive connections for `seconds`, with `headers`
    beside its JSON Content-Type (e.g. an Accept); a request unanswered after `timeout_s` (wrk's
    default: 2 s) counts as a socket error."""
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % body + extra)
    limits = [f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", f"--timeout={timeout_s:g}s"]
    output = subprocess.run(
        ["wrk", *limits, "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    """The result in what WRK_SCRIPT's done() prints (STATUSES code=count,..., P50_US, P99_US,
    REQUESTS and SECONDS lines), with wrk's "Socket errors" line counted as "socket error"
    (connections that failed or timed out without an answer)."""
    values = dict(re.findall(r"^([A-Z0-9_]+) (.*)$", output, flags=re.M))
    statuses = Counter(
        {
            int(k): int(v)
            for k, v in (part.split("=") for part in values["STATUSES"].split(",") if part)
        }
    )
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        statuses["socket error"] = sum(map(int, errors.groups()))
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
    app: str | None = None,
    **settings: str,
) -> LoadResult:
    """Start gunicorn (the service, or `app` under the same settings), drive it, stop it; the
    measured result."""
    body = json.dumps({"n": n, "seed": 1})
    with running_server(models, log_path, app=app, ACCESS_LOG="off", **settings) as (url, master):
        target = f"{url}/v1/models/{model}/samples"
        workers = worker_pids(master.pid)
        cpu_before = sum(map(cpu_seconds, workers))
        drive = run_wrk if client == "wrk" else run_python
        result = drive(target, body, clients, seconds)
        result.worker_cpu_s = sum(map(cpu_seconds, workers)) - cpu_before
        if app is None:
            result.runs = model_runs(url, model)
        return result


def model_runs(url: str, model: str) -> float:
    """The model's onnxruntime runs so far, summed over workers (nv_inference_exec_count)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "nv_inference_exec_count" and sample.labels.get("model") == model
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compute_seconds(models: Path, model: str, n: int, repeats: int = 500) -> float:
    """Median seconds of the generator's onnxruntime run for n samples alone (latest version,
    CPU provider, the service's session settings), its latents drawn beforehand."""
    card = json.loads((models / model / "card.json").read_text())
    version = max(card["versions"], key=lambda v: v["version"])
    session = runtime.create_session(models / model / version["file"], "cpu")
    inputs = generator_drawer(session, card, n).inputs(n, 1)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def ceiling(bare: LoadResult, compute_s: float, cores: int) -> float:
    """Requests/s of "Flask plus the model's compute": each request costs the bare app's share
    of the cores (cores / its rate) plus one onnxruntime run on one core."""
    return cores / (cores / bare.ok_rate + compute_s)


def table(rows: list[tuple[str, LoadResult]], clients: int, n: int, workers: str) -> str:
    """A markdown table, one row per (server, result)."""
    columns = (
        "server client workers clients n seconds requests/s 200/s p50_ms p99_ms "
        "worker_CPU_ms/request requests/run statuses"
    )
    lines = [
        "| " + " | ".join(c.replace("_", " ") for c in columns.split()) + " |",
        "|" + "---|" * len(columns.split()),
    ]
    for server, result in rows:
        statuses = ", ".join(
            f"{status}: {count}" for status, count in sorted(result.statuses.items(), key=str)
        )
        values = [
            server,
            result.client,
            workers,
            clients,
            n,
            f"{result.seconds:.1f}",
            f"{result.rate:.0f}",
            f"{result.ok_rate:.0f}",
            f"{result.p50_ms:.1f}",
            f"{result.p99_ms:.1f}",
            f"{result.cpu_ms:.2f}",
            f"{result.statuses.get(200, 0) / result.runs:.2f}" if result.runs else "",
            statuses,
        ]
        lines.append("| " + " | ".join(str(v) for v in values) + " |")
    return "\n".join(lines)


def setting(text: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    """(NAME, VALUE) of a --set argument; a usage error unless it reads NAME=VALUE."""
    name, equals, value = text.partition("=")
    if not equals or not name.isupper():
        parser.error(f"--set {text!r}: write NAME=VALUE, e.g. BATCHING=off")
    return name, value


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
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another setting of the service, e.g. BATCHING=off (repeatable)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also drive bench/bare.py's two apps (no model; the model and nothing else) under "
        "the same gunicorn settings, time the generator's onnxruntime run alone, and print the "
        "service's share of the ceiling",
    )
    args = parser.parse_args()
    settings = dict(setting(text, parser) for text in args.set)
    workers = f"{args.workers} x {args.threads} threads"
    common = {
        "WEB_CONCURRENCY": args.workers,
        "THREADS": args.threads,
        "MAX_IN_FLIGHT": args.max_in_flight,
    }
    models, load = ROOT / "models", (args.n, args.clients, args.duration, args.client)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "gunicorn.log"
        if args.baseline:
            bare = load_test(models, args.model, *load, log, "bench.bare:app", **common)
            rows.append(("bare Flask, no model", bare))
            alone = load_test(models, args.model, *load, log, "bench.bare:model_app", **common)
            rows.append(("Flask + the model, nothing else", alone))
        service = load_test(models, args.model, *load, log, DATA_DIR=folder, **common, **settings)
        rows.append(("service", service))
    print(table(rows, args.clients, args.n, workers))
    if args.baseline:
        compute_s, cores = compute_seconds(models, args.model, args.n), os.cpu_count() or 1
        limit = ceiling(bare, compute_s, cores)
        print(
            f"\nceiling (bare Flask + {compute_s * 1e3:.2f} ms of onnxruntime per request, "
            f"{cores} cores): {limit:.0f} requests/s; the service's 200/s: "
            f"{service.ok_rate / limit:.2f} of it. CPU per request: bare Flask + onnxruntime "
            f"{bare.cpu_ms + compute_s * 1e3:.2f} ms, the service {service.cpu_ms:.2f} ms: "
            f"{(bare.cpu_ms + compute_s * 1e3) / service.cpu_ms:.2f}"
        )


if __name__ == "__main__":
    main()
