"""Hostile and broken uploads against the real gunicorn: each must get a 4xx problem+json fast.

    python -m bench.hostile      # prints the table: input -> status -> seconds, and memory

The cases are built in memory (the zip bomb streams its zeros) and shared with
tests/reliability/test_hostile.py, which asserts on them.
"""

import io
import json
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from bench.server import ROOT, rss_bytes, running_server, worker_pids


@dataclass(frozen=True)
class Case:
    name: str
    expected: int  # HTTP status
    request: Callable[[], dict]  # -> keyword arguments of requests.post, "path" instead of url


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def forged_npy_header(shape: tuple[int, ...], pad: int = 0) -> bytes:
    """A .npy whose header claims `shape` (float64) but carries 16 bytes of data."""
    header = repr({"descr": "<f8", "fortran_order": False, "shape": shape}) + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR (checksum fixed) claims width x height pixels."""
    data = bytearray(png(np.zeros((8, 8), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def zip_bomb(unpacked_mib: int = 300) -> bytes:
    """One .png member of `unpacked_mib` MiB of zeros, deflated to about 1/1000 of that."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.png", "w", force_zip64=True) as member:
            zeros = b"\0" * (1 << 20)
            for _ in range(unpacked_mib):
                member.write(zeros)
    return buffer.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


Payload = bytes | Callable[[], bytes]  # built when the case runs, if costly


def upload(data: Payload, filename: str, reference: str = "ring8") -> Callable[[], dict]:
    """A multipart upload to /v1/diagnostics, its payload built only when asked for."""

    def build() -> dict:
        payload = data() if callable(data) else data
        return {
            "path": "/v1/diagnostics",
            "data": {"reference": reference},
            "files": {"file": (filename, payload)},
        }

    return build


def raw_post(path: str, data: bytes, headers: dict | None = None) -> Callable[[], dict]:
    return lambda: {"path": path, "data": data, "headers": headers or {}}


def cases() -> list[Case]:
    """Every hostile input of the reliability issue, with the status it must get."""
    tiny_png = png(np.zeros((8, 8), np.uint8))
    return [
        Case("zip bomb (300 MiB of zeros in ~300 kB)", 413, upload(zip_bomb, "bomb.zip")),
        Case(
            "PNG claiming 100000 x 100000 pixels",
            413,
            upload(png_claiming(100_000, 100_000), "bomb.png"),
        ),
        Case(
            ".npy with object dtype (a pickle)",
            400,
            upload(npy(np.array([{"x": 1}], dtype=object), allow_pickle=True), "p.npy"),
        ),
        Case(
            ".npy header claiming 10^12 rows", 413, upload(forged_npy_header((10**12, 2)), "h.npy")
        ),
        Case(".npy header of 60 kB", 400, upload(forged_npy_header((2, 2), pad=60_000), "h.npy")),
        Case(".npy truncated", 400, upload(npy(np.zeros((100, 2)))[:-50], "t.npy")),
        Case(".png truncated", 400, upload(tiny_png[:30], "t.png")),
        Case(".zip truncated", 400, upload(zip_of({"a.png": tiny_png})[:40], "t.zip")),
        Case("NaN values", 422, upload(npy(np.array([[0.0, np.nan]] * 10)), "n.npy")),
        Case("Inf values", 422, upload(npy(np.array([[np.inf, 0.0]] * 10)), "i.npy")),
        Case("3-D points for a 2-D reference", 422, upload(npy(np.zeros((10, 3))), "d.npy")),
        Case("images for a 2-D reference", 422, upload(zip_of({"a.png": tiny_png}), "i.zip")),
        Case("0 samples", 422, upload(npy(np.zeros((0, 2))), "z.npy")),
        Case(
            "50,001 samples (over MAX_UPLOAD_SAMPLES)",
            413,
            upload(lambda: npy(np.zeros((50_001, 2), np.float32)), "m.npy"),
        ),
        Case("CSV with text", 400, upload(b"x,y\n1,2\n3,hello\n", "t.csv")),
        Case(
            "zip with path-traversal names",
            422,
            upload(
                zip_of({"../../../tmp/evil.png": tiny_png, "/etc/passwd.png": tiny_png}), "p.zip"
            ),
        ),
        Case(
            "zip with 60,000 entries",
            413,
            upload(lambda: zip_of({f"{i}.png": b"" for i in range(60_000)}), "many.zip"),
        ),
        Case("no Content-Type, raw body", 415, raw_post("/v1/diagnostics", npy(np.zeros((3, 2))))),
        Case(
            "wrong Content-Type (text/plain)",
            415,
            raw_post("/v1/diagnostics", b"0,0\n", {"Content-Type": "text/plain"}),
        ),
        Case(
            "non-UTF-8 JSON body",
            400,
            raw_post(
                "/v1/models/ring8-gan/samples",
                b'{"n": "\xff\xfe"}',
                {"Content-Type": "application/json"},
            ),
        ),
        Case("non-UTF-8 JSON upload", 400, upload(b"\xff\xfe[[1, 2]]", "u.json")),
        Case(
            "65 MiB body (over MAX_UPLOAD_BYTES)", 413, upload(lambda: b"0" * (65 << 20), "big.csv")
        ),
    ]


@dataclass
class Outcome:
    case: Case
    status: int
    seconds: float
    problem: bool  # answered application/problem+json with the error member


def run_case(url: str, case: Case) -> Outcome:
    """Send one case (its payload built first, outside the timing)."""
    arguments = case.request()
    path = arguments.pop("path")
    started = time.perf_counter()
    response = requests.post(f"{url}{path}", timeout=30, **arguments)
    seconds = time.perf_counter() - started
    problem = response.headers.get("Content-Type") == "application/problem+json" and bool(
        json.loads(response.content).get("error")
    )
    return Outcome(case, response.status_code, seconds, problem)


def run_all(url: str, master_pid: int) -> tuple[list[Outcome], int, int]:
    """(outcomes, worker RSS before, after) for the one-worker server at url."""
    worker = worker_pids(master_pid)[0]
    before = rss_bytes(worker)
    outcomes = [run_case(url, case) for case in cases()]
    return outcomes, before, rss_bytes(worker)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        with running_server(
            ROOT / "models", Path(folder) / "log.txt", WEB_CONCURRENCY="1", DATA_DIR=folder
        ) as (url, process):
            outcomes, before, after = run_all(url, process.pid)
            healthy = requests.get(f"{url}/healthz", timeout=5).status_code
    print("| input | status (expected) | seconds | problem+json |")
    print("|---|---|---|---|")
    for outcome in outcomes:
        print(
            f"| {outcome.case.name} | {outcome.status} ({outcome.case.expected}) | "
            f"{outcome.seconds:.3f} | {'yes' if outcome.problem else 'NO'} |"
        )
    print(
        f"\nworker RSS: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after "
        f"({(after - before) / 2**20:+.1f} MiB); /healthz afterwards: {healthy}"
    )


if __name__ == "__main__":
    main()
