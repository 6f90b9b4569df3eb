"""Benchmark: generation through the service runtime vs plain PyTorch, same model, same device.

    python -m bench.generation                          # CPU: every kind, torch vs service
    python -m bench.generation --device cuda            # the GPU machine: + fp16, DCGAN 32x32
    python -m bench.generation --kinds mlp-gan --repeats 20 --no-http

For each model kind the service serves (the 2-D MLP GAN, the 8x8 image GAN, the score model
sampled with 18 Heun steps) and a DCGAN at 32x32 (4 ConvTranspose layers, the GPU-scale image
GAN), the trainer builds the network from a bundled card's architecture (seeded initial weights;
the speed does not depend on their values) and exports it to ONNX with its own exporter. Then,
in one process on one device:

- torch eager fp32 (and fp16 and torch.compile where they run): the module in eval mode under
  inference_mode, its inputs already on the device and its outputs left there (the most
  favourable setting for PyTorch); on the CPU also torch in the service's CPU pieces
  (lab.runtime.CPU_BATCH rows per call), so that what the pieces gain is not credited to
  onnxruntime;
- the service runtime: the ONNX file in a session made by lab.runtime.create_session and
  run by the service's own code (lab.sampling's generator_drawer and score_drawer), numpy
  latents in and numpy samples out, as a request gets them; for the score model also its fused
  trajectory graph (the whole sampler in one run, trainer/edm/fused.py), for the GANs also
  their float16 graph (trainer/half.py, which the service runs on CUDA);
- HTTP: gunicorn with the repo's config serving the bundled models, a 4,096-sample NPY request
  (`--http-samples`), against the service runtime on the same bundled file in this process.

Each time is the median of `--repeats` runs after 2 warm-up runs. The parity column is the
max |torch fp32 - service| over the batch (same weights, same latents or noise), so the rows
compare one model. Prints markdown tables.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from bench.server import running_server
from lab import runtime
from lab.noise import gaussian_latents
from lab.samplers import time_steps
from lab.sampling import (
    DEFAULT_MAX_BATCH,
    ScoreGraphs,
    ScoreSpec,
    file_sampler,
    generator_drawer,
    score_drawer,
)
from service.config import REPO_MODELS
from trainer.edm.export import to_onnx as score_to_onnx
from trainer.edm.fused import fuse_trajectory
from trainer.edm.precond import Denoiser
from trainer.export import to_onnx as gan_to_onnx
from trainer.half import half_precision
from trainer.nets import ARCHITECTURES, SCORE_NETWORKS

SEED = 1
HEUN_STEPS = 18  # 35 network evaluations, the score cards' default


@dataclass
class Kind:
    """A model kind: which bundled card gives its architecture, and how it runs."""

    name: str
    card: str  # bundled model whose architecture (and, over HTTP, ONNX file) is benched
    score: bool = False
    architecture: dict | None = None  # overrides the card's (the 32x32 DCGAN)
    http: bool = True  # a bundled model of this kind exists to request over HTTP


KINDS = {
    "mlp-gan": Kind("mlp-gan", "ring8-wgan-gp"),
    "dcgan-8x8": Kind("dcgan-8x8", "stacked-digits-gan"),
    "score-heun18": Kind("score-heun18", "grid25-edm", score=True),
    "dcgan-32x32": Kind(
        "dcgan-32x32",
        "stacked-digits-gan",
        architecture={
            "name": "dcgan",
            "args": {"latent_dim": 100, "channels": 3, "width": 64, "size": 32},
        },
        http=False,
    ),
}


def read_card(name: str) -> dict:
    return json.loads((REPO_MODELS / name / "card.json").read_text())


def architecture(kind: Kind) -> dict:
    return kind.architecture or read_card(kind.card)["architecture"]


def build_module(kind: Kind) -> tuple[nn.Module, dict]:
    """(the torch module in eval mode with seeded weights, its architecture spec)."""
    spec = architecture(kind)
    torch.manual_seed(0)
    if kind.score:
        card = read_card(kind.card)
        module = Denoiser(SCORE_NETWORKS.get(spec["name"])(**spec["args"]), card["sigma_data"])
    else:
        module, _ = ARCHITECTURES.get(spec["name"])(**spec["args"])
    return module.eval(), spec


def median_time(work: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall seconds of work() over `repeats` runs, after 2 warm-up runs."""
    for _ in range(2):
        work()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def torch_heun(denoiser: nn.Module, noise: torch.Tensor, t: np.ndarray) -> torch.Tensor:
    """EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 1) in torch: the state
    stays on noise's device and dtype. t: the time steps, ending at 0."""
    x = noise * float(t[0])
    sigma = torch.empty(len(noise), device=noise.device, dtype=noise.dtype)
    for current, following in zip(t[:-1].tolist(), t[1:].tolist(), strict=True):
        slope = (x - denoiser(x, sigma.fill_(current))) / current
        proposal = x + (following - current) * slope
        if following > 0:
            second = (proposal - denoiser(proposal, sigma.fill_(following))) / following
            proposal = x + (following - current) * 0.5 * (slope + second)
        x = proposal
    return x


@dataclass
class Row:
    kind: str
    path: str
    batch: int
    seconds: float | None
    note: str = ""
    parity: float | None = None


def torch_rows(
    kind: Kind, module: nn.Module, batch: int, device: str, repeats: int, compile_: bool
) -> tuple[list[Row], np.ndarray]:
    """torch eager fp32 (+ fp16 and torch.compile on CUDA or when asked); the fp32 output."""
    card = read_card(kind.card)
    if kind.score:
        spec = ScoreSpec.from_card(card)
        t = time_steps(HEUN_STEPS, spec.sigma_min, spec.sigma_max, spec.rho)
        noise = gaussian_latents(batch, int(np.prod(spec.sample_shape)), SEED)
        inputs = torch.from_numpy(noise.reshape(batch, *spec.sample_shape))

        def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return torch_heun(model, x, t) / spec.data_scale
    else:
        latent_dim = architecture(kind)["args"]["latent_dim"]
        inputs = torch.from_numpy(gaussian_latents(batch, latent_dim, SEED))

        def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return model(x)

    def in_pieces(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([run(model, piece) for piece in x.split(runtime.CPU_BATCH)])

    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    module, inputs = module.to(device), inputs.to(device)
    variants: list[tuple[str, nn.Module | str, torch.dtype, Callable]] = [
        ("torch eager fp32", module, torch.float32, run)
    ]
    if device == "cpu":  # what the service runtime does on the CPU (ORT_CPU_BATCH), in torch
        label = f"torch eager fp32, {runtime.CPU_BATCH}-row pieces"
        variants.append((label, module, torch.float32, in_pieces))
    if device == "cuda":
        variants.append(("torch eager fp16", module, torch.float16, run))
    if compile_ or device == "cuda":
        variants.append(("torch.compile fp32", "compile", torch.float32, run))
    rows, reference = [], None
    for label, model, dtype, runner in variants:
        try:
            if model == "compile":
                model = torch.compile(module)
            model = model.to(dtype)
            x = inputs.to(dtype)
            with torch.inference_mode():
                seconds = median_time(lambda m=model, x=x, r=runner: r(m, x), repeats, sync)
                if reference is None:
                    reference = run(model, x).float().cpu().numpy()
            rows.append(Row(kind.name, label, batch, seconds))
        except Exception as error:  # torch.compile needs a compiler toolchain, fp16 a GPU
            rows.append(Row(kind.name, label, batch, None, f"did not run: {type(error).__name__}"))
        finally:
            module.float()
    return rows, reference


def service_runner(kind: Kind, path: Path, device: str, batch: int) -> Callable[[], np.ndarray]:
    """The service's own generation code (lab.sampling's drawers) over the ONNX file at `path`,
    for `batch` samples."""
    card = read_card(kind.card)
    session = runtime.create_session(path, device)
    if kind.score:  # a version that lists no sampler graphs: the numpy sampler
        draw = score_drawer(card, ScoreGraphs({}, denoiser=session), HEUN_STEPS, "heun")
    else:  # the card fields generator_drawer reads, of this architecture (the DCGAN's own)
        gan_card = {"input": {"name": session.get_inputs()[0].name}}
        gan_card["latent_dim"] = architecture(kind)["args"]["latent_dim"]
        draw = generator_drawer(session, gan_card, DEFAULT_MAX_BATCH)
    return lambda: draw(batch, SEED)


def export(kind: Kind, module: nn.Module, folder: Path) -> Path:
    """The trainer's ONNX export of `module`, written under `folder`."""
    spec = architecture(kind)
    if kind.score:
        model = score_to_onnx(module.cpu(), ScoreSpec.from_card(read_card(kind.card)).sample_shape)
    else:
        model = gan_to_onnx(module.cpu(), spec["args"]["latent_dim"])
    path = folder / f"{kind.name}.onnx"
    onnx.save(model, path)
    return path


def bench_kind(
    kind: Kind, batch: int, device: str, repeats: int, folder: Path, compile_: bool
) -> list[Row]:
    module, _ = build_module(kind)
    path = export(kind, module, folder)
    rows, reference = torch_rows(kind, module, batch, device, repeats, compile_)
    runners = {"service runtime": service_runner(kind, path, device, batch)}
    if kind.score:
        runners["service runtime, fused graph"] = fused_runner(kind, path, device, batch, folder)
    else:  # the float16 graph (trainer/half.py), which the service runs on CUDA (FP16=auto)
        half = folder / f"{kind.name}-fp16.onnx"
        onnx.save(half_precision(onnx.load(path)), half)
        runners["service runtime, fp16 graph"] = service_runner(kind, half, device, batch)
    for label, generate in runners.items():
        seconds = median_time(generate, repeats, lambda: None)
        parity = None if reference is None else float(np.max(np.abs(generate() - reference)))
        rows.append(Row(kind.name, label, batch, seconds, parity=parity))
    return rows


def fused_runner(
    kind: Kind, path: Path, device: str, batch: int, folder: Path
) -> Callable[[], np.ndarray]:
    """The service's fused-trajectory path: the denoiser at `path` fused into one graph for
    HEUN_STEPS Heun steps (trainer/edm/fused.py), drawn by lab.sampling.score_drawer."""
    card = read_card(kind.card)
    spec = ScoreSpec.from_card(card)
    t = time_steps(HEUN_STEPS, spec.sigma_min, spec.sigma_max, spec.rho)
    fused_path = folder / f"{kind.name}-fused.onnx"
    onnx.save(fuse_trajectory(onnx.load(path), t, "heun", spec.data_scale), fused_path)
    session = runtime.create_session(fused_path, device, large_graph=True)
    version = {"fused": {"sampler": "heun", "steps": HEUN_STEPS}}  # what a card would list
    draw = score_drawer(card, ScoreGraphs(version, fused=session), HEUN_STEPS, "heun")
    return lambda: draw(batch, SEED)


def bundled_runner(kind: Kind, card: dict, device: str, n: int) -> Callable[[], np.ndarray]:
    """What the service runs for an n-sample request to the bundled model `card` (its newest
    version): the fused trajectory graph when the card has one for HEUN_STEPS Heun steps
    (FUSED_SAMPLER=on), else the model step by step."""
    version = card["versions"][-1]
    if not kind.score:
        return service_runner(kind, REPO_MODELS / kind.card / version["file"], device, n)
    draw = file_sampler(REPO_MODELS / kind.card, card, version, HEUN_STEPS, "heun", device)
    return lambda: draw(n, SEED)


def http_rows(kinds: list[Kind], n: int, device: str, repeats: int, folder: Path) -> list[Row]:
    """POST /v1/models/{card}/samples for n samples as NPY through gunicorn, against the
    service runtime on the same bundled file in this process."""
    rows = []
    settings = {"DEVICE": device if device == "cuda" else "cpu", "DATA_DIR": str(folder)}
    settings |= {"WEB_CONCURRENCY": "1", "ACCESS_LOG": "/dev/null"}
    with running_server(REPO_MODELS, folder / "gunicorn.log", **settings) as (url, _):
        for kind in kinds:
            card = read_card(kind.card)
            body = json.dumps({"n": n, "seed": SEED}).encode()

            def post(name: str = kind.card, body: bytes = body) -> bytes:
                request = urllib.request.Request(
                    f"{url}/v1/models/{name}/samples",
                    body,
                    {"Content-Type": "application/json", "Accept": "application/x-npy"},
                )
                with urllib.request.urlopen(request, timeout=300) as response:
                    return response.read()

            raw = median_time(bundled_runner(kind, card, device, n), repeats, lambda: None)
            over_http = median_time(post, repeats, lambda: None)
            rows.append(Row(kind.name, f"service runtime ({kind.card})", n, raw))
            overhead = f"HTTP overhead {100 * (over_http - raw) / raw:+.0f}% of raw generation"
            rows.append(Row(kind.name, f"HTTP NPY ({kind.card})", n, over_http, overhead))
    return rows


def table(rows: list[Row]) -> str:
    """Markdown: samples/s and the ratio to torch eager fp32 and fp16 of the same kind."""
    lines = [
        "| kind | path | batch | samples/s | vs torch fp32 | vs torch fp16 | parity | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        same = {r.path: r for r in rows if r.kind == row.kind and r.batch == row.batch}
        ratios = []
        for base in ("torch eager fp32", "torch eager fp16"):
            other = same.get(base)
            ok = other is not None and other.seconds and row.seconds
            ratios.append(f"{other.seconds / row.seconds:.2f}x" if ok else "")
        rate = f"{row.batch / row.seconds:,.0f}" if row.seconds else "-"
        parity = f"{row.parity:.1e}" if row.parity is not None else ""
        cells = [row.kind, row.path, str(row.batch), rate, *ratios, parity, row.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    parser.add_argument("--batch", type=int, help="samples per call (cpu 4096, cuda 8192)")
    parser.add_argument("--batch-32", type=int, help="for dcgan-32x32 (cpu 256, cuda 8192)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads, torch and ORT")
    parser.add_argument("--compile", action="store_true", help="torch.compile on the CPU too")
    parser.add_argument("--http-samples", type=int, default=4096)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    gpu = args.device == "cuda"
    batch = args.batch or (8192 if gpu else 4096)
    batch_32 = args.batch_32 or (8192 if gpu else 256)
    os.environ["ORT_INTRA_OP_THREADS"] = str(args.threads)  # read by runtime.create_session
    torch.set_num_threads(args.threads)
    kinds = [KINDS[name] for name in args.kinds]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for kind in kinds:
            size = batch_32 if kind.name == "dcgan-32x32" else batch
            rows += bench_kind(kind, size, args.device, args.repeats, folder, args.compile)
            print(table(rows[-1:]).splitlines()[-1], flush=True)
        if not args.no_http:
            served = [kind for kind in kinds if kind.http]
            rows += http_rows(served, args.http_samples, args.device, args.repeats, folder)
    name = torch.cuda.get_device_name() if gpu else f"CPU, {args.threads} thread(s)"
    print(f"\n{name}; torch {torch.__version__}; onnxruntime {runtime.ort.__version__}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
