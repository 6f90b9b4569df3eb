"""This service beside the servers people would pick instead, under the same load, in one run.

    python -m bench.peers --install            # once: a virtualenv per peer under .peers/
    python -m bench.peers                      # every installed peer, ring8-gan, n=64 JSON
    python -m bench.peers --peers kserve,litserve --duration 5
    python -m bench.peers --n 64 --binary-n 4096   # n=64 answered as JSON, n=4,096 as binary
    python -m bench.peers --model stacked-digits-gan --n 64,4096

One model (the latest version of a bundled gan) served by bare Flask on gunicorn with no model
(bench/bare.py: the ceiling's Flask half), by this service (its default settings, and the
previous default of one worker x 8 threads) and by each peer installed under .peers/<peer>
(bench/peer_servers/: KServe's ModelServer, MLServer, LitServe, BentoML, PyTriton, each
configured as its docs show, batching on where it has it), one after the other on loopback.
Every server does the same work per request: parse n and seed, draw the seed's latents as the
service does (PCG64), one onnxruntime run with the service's CPU session settings, answer the
samples as JSON (--n) or in the binary form each server's docs give for raw tensors (--binary-n:
this service's NPY, the Open Inference Protocol's binary tensor extension, ...; PEERS). Before
its load, each answer is compared with a local onnxruntime run of the same (n, seed): the table
says whether every value matched exactly. Then `wrk` (the same script as bench/load.py) warms it
up and loads it: requests/s, p50, p99, answers other than 200 and the server's CPU milliseconds
per request (all its processes, from /proc). The peers' virtualenvs are never needed by `make
test`.
"""

import argparse
import base64
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.load import LoadResult, ceiling, compute_seconds, cpu_seconds, run_wrk
from bench.peer_servers.generator import model_drawer
from bench.server import ROOT, free_port, running_server, wait_ready

PEERS_DIR = ROOT / ".peers"
ONNXRUNTIME = "onnxruntime==1.31.1"  # the service's pin (constraints.txt), in every peer
CLIENTS, WARM_UP_S, SEED = 32, 3.0, 1
# Seconds wrk waits for an answer: large requests to the slower peers take seconds under 32
# clients, and a wait past wrk's default of 2 s would count as an error rather than a latency.
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Wire:
    """How a server is asked for the samples of (n, seed) in one format: the path ({model} filled
    in), the encoding of the request and of its answer (ENCODINGS), extra request headers and
    extra members of the JSON body, and a label for the table."""

    path: str
    encoding: str
    label: str
    headers: tuple[tuple[str, str], ...] = ()
    extra: tuple[tuple[str, str], ...] = ()


# encoding: how the body is written ("json": {"n", "seed"}; "v2": the Open Inference Protocol's
# JSON with INT64 inputs n and seed) and how the answer reads (answer_samples).
ENCODINGS = ("json", "npy", "v2", "v2-binary", "v2-base64-npy")
NPY = "application/x-npy"
SERVICE_PATH = "/v1/models/{model}/samples"
SERVICE_WIRES = {
    False: Wire(SERVICE_PATH, "json", "JSON"),
    True: Wire(SERVICE_PATH, "npy", "NPY (Accept: application/x-npy)", (("Accept", NPY),)),
}


@dataclass(frozen=True)
class Peer:
    """A server to compare with: its virtualenv's requirements, how it is configured (for the
    table), its readiness path ({model} filled in), and its wires for JSON and binary answers."""

    name: str
    label: str
    requirements: tuple[str, ...]
    settings: str
    ready: str
    json: Wire
    binary: Wire

    def python(self) -> Path:
        return PEERS_DIR / self.name / "bin" / "python"

    def command(self, port: int, model: str, workers: int) -> list[str]:
        script = ["-m", f"bench.peer_servers.serve_{self.name}"]
        arguments = ["--port", str(port), "--model", model, "--workers", str(workers)]
        return [str(self.python()), *script, *arguments]


V2_INFER = "/v2/models/{model}/infer"
V2_BINARY = "V2, binary tensor extension (binary_data_output)"
PEERS = (
    Peer(
        "kserve",
        "KServe ModelServer 0.21",
        ("kserve==0.21.0",),
        "sync predict, W uvicorn workers",
        "/v1/models/{model}",
        Wire("/v1/models/{model}:predict", "json", "V1 JSON"),
        Wire(V2_INFER, "v2-binary", V2_BINARY),
    ),
    Peer(
        "mlserver",
        "MLServer 1.7.1",
        ("mlserver==1.7.1", "uvloop<0.22"),  # its parallel workers fail with uvloop 0.22
        "W parallel workers, adaptive batching 16 / 2 ms",
        "/v2/health/ready",  # both its models (JSON and -npy) loaded
        Wire(V2_INFER, "v2", "V2 JSON"),
        Wire("/v2/models/{model}-npy/infer", "v2-base64-npy", "V2 JSON, base64 .npy (BYTES)"),
    ),
    Peer(
        "pytriton",
        "PyTriton 0.7 (tritonserver)",
        ("nvidia-pytriton==0.7.0", "numpy<2"),  # 0.7 is built against numpy 1
        "W model instances, dynamic batcher 16 / 500 us",
        "/v2/models/{model}/ready",
        Wire(V2_INFER, "v2", "V2 JSON"),
        Wire(V2_INFER, "v2-binary", V2_BINARY),
    ),
    Peer(
        "litserve",
        "LitServe 0.2.19",
        ("litserve==0.2.19",),
        "W API servers + W workers, batching 16 / 2 ms",
        "/health",
        Wire("/predict", "json", "JSON"),
        Wire("/predict", "npy", ".npy bytes (a Response)", extra=(("format", "npy"),)),
    ),
    Peer(
        "bentoml",
        "BentoML 1.4.40",
        ("bentoml==1.4.40",),
        "W workers, sync API (its batching takes arrays, not n and seed)",
        "/readyz",
        Wire("/samples", "json", "JSON"),
        Wire("/samples_npy", "npy", ".npy file (a Path output)"),
    ),
)


@dataclass(frozen=True)
class Row:
    """One server's line of the table: its name and settings, the size asked, whether binary and
    on which wire, the load's result, and whether its answer matched the local onnxruntime run
    ("" when it has none to check)."""

    server: str
    settings: str
    n: int
    binary: bool
    wire: str
    result: LoadResult
    cpu_s: float
    checked: str


def request_body(wire: Wire, n: int, seed: int) -> str:
    """The body of a samples request for (n, seed) in the wire's encoding: {"n", "seed"} and the
    wire's extra members, or the V2 inference request with INT64 inputs n and seed [1, 1] (its
    outputs binary for "v2-binary")."""
    if not wire.encoding.startswith("v2"):
        return json.dumps({"n": n, "seed": seed, **dict(wire.extra)})
    tensors = [
        {"name": name, "shape": [1, 1], "datatype": "INT64", "data": [value]}
        for name, value in (("n", n), ("seed", seed))
    ]
    body: dict = {"inputs": tensors}
    if wire.encoding == "v2-binary":
        body["parameters"] = {"binary_data_output": True}
    return json.dumps(body)


def answer_samples(encoding: str, body: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """The samples [n, ...] float32 of an answer: a .npy file (never unpickled); the V2 output's
    binary tensor after the JSON header (Inference-Header-Content-Length bytes), or its flat JSON
    data, in its shape [1, n, ...]; a V2 BYTES output holding a base64 .npy; or the JSON answer's
    "samples" (this service, LitServe, BentoML) or "predictions" (KServe V1)."""
    if encoding == "npy":
        return np.load(io.BytesIO(body), allow_pickle=False)
    if encoding == "v2-binary":
        length = int(headers["Inference-Header-Content-Length"])
        (output,) = json.loads(body[:length])["outputs"]
        raw = body[length : length + output["parameters"]["binary_data_size"]]
        return np.frombuffer(raw, "<f4").reshape(output["shape"])[0]
    answer = json.loads(body)
    if encoding == "v2-base64-npy":
        (output,) = answer["outputs"]
        return np.load(io.BytesIO(base64.b64decode(output["data"][0])), allow_pickle=False)
    if encoding == "v2":
        (output,) = answer["outputs"]
        return np.asarray(output["data"], np.float32).reshape(output["shape"])[0]
    values = answer["samples"] if "samples" in answer else answer["predictions"]
    return np.asarray(values, np.float32)


def check_answer(url: str, wire: Wire, n: int, expected: np.ndarray) -> str:
    """POST one (n, SEED) request; "exact" when every value equals the local run's, else the
    largest absolute difference (or the shape that came back)."""
    headers = {"Content-Type": "application/json", **dict(wire.headers)}
    body = request_body(wire, n, SEED).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as response:
        samples = answer_samples(wire.encoding, response.read(), response.headers)
    if samples.shape != expected.shape:
        return f"shape {list(samples.shape)} != {list(expected.shape)}"
    difference = float(np.max(np.abs(samples - expected)))
    return "exact" if difference == 0.0 else f"max abs diff {difference:.2g}"


def tree_pids(root: int) -> list[int]:
    """root and its descendants, from /proc (gone processes are skipped)."""
    pids, pending = [], [root]
    while pending:
        pid = pending.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                pending += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return pids


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of root and its living descendants."""
    total = 0.0
    for pid in tree_pids(root):
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError):
            continue
    return total


def measure(url: str, wire: Wire, n: int, root: int, seconds: float) -> tuple[LoadResult, float]:
    """Warm up with wrk, then load for `seconds` with (n, SEED) requests on the wire: the result
    and the server's CPU seconds."""
    body, headers = request_body(wire, n, SEED), dict(wire.headers)
    run_wrk(url, body, CLIENTS, WARM_UP_S, timeout_s=TIMEOUT_S, headers=headers)
    before = tree_cpu_seconds(root)
    result = run_wrk(url, body, CLIENTS, seconds, timeout_s=TIMEOUT_S, headers=headers)
    return result, tree_cpu_seconds(root) - before


@contextmanager
def running_peer(peer: Peer, model: str, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """(base url, pid) of the peer serving `model`, in a process group of its own, stopped
    (SIGTERM, then SIGKILL after 20 s) on exit."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "LD_LIBRARY_PATH": base_libdir(peer)}
    with log.open("w") as output:
        process = subprocess.Popen(
            peer.command(port, model, workers),
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, process, seconds=180, path=peer.ready.format(model=model))
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{peer.name}: {error}; log:\n{log.read_text()[-2000:]}") from None
        yield url, process.pid
    finally:
        stop_group(process)


def base_libdir(peer: Peer) -> str:
    """The lib/ folder of the interpreter the peer's virtualenv was made from (pyvenv.cfg's
    home): tritonserver's Python backend stub links that interpreter's libpython3.11, and finds
    another one (or none) without it."""
    config = (PEERS_DIR / peer.name / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in config.splitlines() if "home" in line)
    return str(Path(home).parent / "lib")


def stop_group(process: subprocess.Popen, seconds: float = 20) -> None:
    """SIGTERM the process's group, SIGKILL it if the leader is still there after `seconds`."""
    for sign, wait in ((signal.SIGTERM, seconds), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sign)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class Load:
    """What every server is asked: samples of `model` for each of `cases` (n, and whether the
    answer is binary), `seconds` of load per case."""

    model: str
    cases: tuple[tuple[int, bool], ...]
    seconds: float


def case_rows(
    server: str,
    settings: str,
    url: str,
    wires: dict[bool, Wire],
    root: int,
    load: Load,
    check: bool,
) -> list[Row]:
    """One row per case of a running server (base `url`, `wires` by binary or not): its answer
    checked (when `check`), then its load measured."""
    rows = []
    for n, binary in load.cases:
        wire = wires[binary]
        target = url + wire.path.format(model=load.model)
        expected = model_drawer(load.model)(n, SEED)
        checked = check_answer(target, wire, n, expected) if check else ""
        result, cpu_s = measure(target, wire, n, root, load.seconds)
        rows.append(Row(server, settings, n, binary, wire.label, result, cpu_s, checked))
    return rows


def peer_rows(peer: Peer, load: Load, workers: int, log: Path) -> list[Row]:
    """Start the peer, check and load it at each case, stop it."""
    settings = peer.settings.replace("W ", f"{workers} ")
    wires = {False: peer.json, True: peer.binary}
    with running_peer(peer, load.model, workers, log) as (url, pid):
        return case_rows(peer.label, settings, url, wires, pid, load, check=True)


def gunicorn_rows(
    server: str, load: Load, folder: Path, app: str | None = None, **settings: str
) -> list[Row]:
    """The service (app None) or another WSGI app under the repo's gunicorn config, access log
    off, with `settings` (environment) over its defaults; only the service's answers are
    checked (bench/bare.py answers fixed rows)."""
    shown = ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"
    log, data = folder / "gunicorn.log", str(folder / "data")
    with running_server(
        ROOT / "models", log, app=app, ACCESS_LOG="off", DATA_DIR=data, **settings
    ) as (url, master):
        return case_rows(server, shown, url, SERVICE_WIRES, master.pid, load, check=app is None)


def table(rows: list[Row]) -> str:
    """A markdown table, one line per row, in the order run."""
    lines = [
        "| server | settings | n | answer | requests/s | p50 ms | p99 ms | non-200 | "
        "CPU ms/request | answer vs local onnxruntime |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        result = row.result
        non_200 = result.requests - result.statuses.get(200, 0)
        cpu_ms = 1e3 * row.cpu_s / max(result.requests, 1)
        values = (
            row.server,
            row.settings,
            f"{row.n:,}",
            row.wire,
            f"{result.rate:,.0f}",
            f"{result.p50_ms:.1f}",
            f"{result.p99_ms:.1f}",
            f"{non_200:,}",
            f"{cpu_ms:.2f}",
            row.checked,
        )
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def install(peers: list[Peer]) -> None:
    """A virtualenv per peer under .peers/ (python3.11 -m venv), with its pinned requirements,
    onnxruntime, numpy and jsonschema (what lab.sampling imports)."""
    for peer in peers:
        folder = PEERS_DIR / peer.name
        subprocess.run(["python3.11", "-m", "venv", str(folder)], check=True)
        pip = [str(peer.python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(pip + [*peer.requirements, ONNXRUNTIME, "jsonschema"], check=True)
        print(f"installed {peer.name} in {folder}", flush=True)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def sizes(text: str, flag: str, parser: argparse.ArgumentParser) -> tuple[int, ...]:
    """A comma list of sample counts as positive ints ("" for none); a usage error otherwise."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = (0,)
    if values and min(values) < 1:
        parser.error(f"{flag} {text!r}: write sample counts separated by commas, e.g. 64,4096")
    return values


def peer_rows_retried(peer: Peer, load: Load, workers: int, log: Path) -> list[Row]:
    """peer_rows, started a second time if the first start fails (PyTriton's start-up with
    several instances races on its handshake socket now and then); no rows, said on stderr,
    if both fail."""
    for attempt in (1, 2):
        try:
            return peer_rows(peer, load, workers, log)
        except RuntimeError as error:
            print(f"{peer.name}: start {attempt} failed: {error}", file=sys.stderr)
    return []


def ceiling_lines(rows: list[Row], load: Load) -> list[str]:
    """Per case: the ceiling "bare Flask plus the model's compute" (bench.load.ceiling, the
    onnxruntime run timed alone; bare Flask answering in the same format) and each server's
    requests/s as a share of it."""
    cores, lines = os.cpu_count() or 1, []
    for n, binary in load.cases:
        in_case = [row for row in rows if (row.n, row.binary) == (n, binary)]
        compute_s = compute_seconds(ROOT / "models", load.model, n)
        limit = ceiling(in_case[0].result, compute_s, cores)
        shares = ", ".join(f"{row.server} {row.result.ok_rate / limit:.2f}" for row in in_case[1:])
        lines.append(
            f"n={n:,} {'binary' if binary else 'JSON'}: ceiling {limit:,.0f} requests/s (bare "
            f"Flask + {compute_s * 1e3:.2f} ms of onnxruntime per request on {cores} cores); 200/s "
            f"as a share of it: {shares}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [peer.name for peer in PEERS]
    parser.add_argument("--peers", default=",".join(names), help="comma list (default: all)")
    parser.add_argument("--model", default="ring8-gan", help="a bundled gan")
    parser.add_argument("--n", default="64", help="samples per JSON request, a comma list")
    parser.add_argument(
        "--binary-n", default="", help="samples per request answered in binary, a comma list"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per case")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="per peer")
    parser.add_argument("--install", action="store_true", help="create the peers' virtualenvs")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)} (known: {', '.join(names)})")
    peers = [peer for peer in PEERS if peer.name in chosen]
    if args.install:
        install(peers)
        return
    missing = [peer.name for peer in peers if not peer.python().exists()]
    if missing:
        print(f"skipped (not installed, see --install): {', '.join(missing)}", file=sys.stderr)
    cases = [(n, False) for n in sizes(args.n, "--n", parser)]
    cases += [(n, True) for n in sizes(args.binary_n, "--binary-n", parser)]
    if not cases:
        parser.error("nothing to measure: give --n or --binary-n sample counts")
    load = Load(args.model, tuple(cases), args.duration)
    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load_average()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rows = gunicorn_rows("bare Flask + gunicorn, no model", load, folder, "bench.bare:app")
        rows += gunicorn_rows("this service", load, folder)
        previous = {"WEB_CONCURRENCY": "1", "THREADS": "8"}
        rows += gunicorn_rows("this service, the previous default", load, folder, **previous)
        for peer in peers:
            if peer.name not in missing:
                rows += peer_rows_retried(peer, load, args.workers, folder / f"{peer.name}.log")
    print(
        f"{load.model}, seed {SEED}; wrk -t2 -c{CLIENTS} -d{load.seconds:g}s "
        f"--timeout {TIMEOUT_S:g}s per case after "
        f"{WARM_UP_S:g} s of warm-up, one server at a time; {os.cpu_count()} cores; {started}; "
        f"load average before {load_before}, after {load_average()}\n"
    )
    print(table(sorted(rows, key=lambda row: load.cases.index((row.n, row.binary)))))
    print("\n" + "\n".join(ceiling_lines(rows, load)))


if __name__ == "__main__":
    main()
