"""Benchmark: a score model's sampler, the service path (numpy Heun/Euler over onnxruntime)
vs the same sampler calling the PyTorch network directly, on the same model in the same run.

    python -m bench.score_sampler                       # models/grid25-edm, n 2,500 and 10,000
    python -m bench.score_sampler --model digits-edm --sizes 1000
    python -m bench.score_sampler --run-dir RUN_DIR     # torch from that run (else: none)
    python -m bench.score_sampler --device cuda         # the onnxruntime paths on the GPU

Both paths run lab.sampling.score_samples (so the samples agree to float32 rounding; the
table shows the max difference); only the denoiser differs: onnxruntime's CPU session as the
service creates it (ORT_INTRA_OP_THREADS, default 1) or the torch EMA network (torch threads
set to match). When the card lists a fused trajectory graph for the default sampler and steps
(trainer/edm/fused.py), a row runs it: the whole sampler in one onnxruntime call per batch.
When it lists step graphs, a row runs them: one onnxruntime call per step and batch, the state
kept in an OrtValue between steps (what the service runs for requests the fused graph does not
serve; STEP_GRAPHS). Each time is the best of --repeats runs, imports and session creation
excluded. Prints a markdown table.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from lab import runtime
from lab.samplers import SAMPLERS, network_evaluations
from lab.sampling import (
    DEFAULT_MAX_BATCH,
    ScoreSpec,
    fused_score_samples,
    matching_fused,
    onnx_denoiser,
    score_samples,
    stepped_score_samples,
)
from service.config import REPO_MODELS


def best_time(repeats: int, work, *args) -> tuple[float, np.ndarray]:
    """(the best wall time in seconds of `repeats` calls of work(*args), its last result)."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work(*args)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="grid25-edm")
    parser.add_argument("--models-dir", type=Path, default=REPO_MODELS)
    parser.add_argument("--run-dir", type=Path, help="the run the model was exported from")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 10_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    card = json.loads((args.models_dir / args.model / "card.json").read_text())
    version = card["versions"][-1]
    session = runtime.create_session(args.models_dir / args.model / version["file"], args.device)
    denoisers = {"service, step by step": onnx_denoiser(session, card, DEFAULT_MAX_BATCH)}
    if args.run_dir is not None:
        import torch

        from trainer.edm.training_loop import load_run, torch_denoiser

        torch.set_num_threads(int(os.environ.get("ORT_INTRA_OP_THREADS", "1")))
        denoisers["plain PyTorch"] = torch_denoiser(load_run(args.run_dir).ema.eval())
    spec, steps, sampler = ScoreSpec.from_card(card), card["sampler"]["steps"], "heun"
    nfe = network_evaluations(steps, sampler)
    where = runtime.session_provider(session)
    print(f"{args.model}: {steps} {sampler} steps ({nfe} network evaluations), {where}\n")
    print("| n | path | seconds | samples/s | max abs difference |")
    print("| --- | --- | --- | --- | --- |")
    fused = matching_fused(version, sampler, steps)
    if fused is not None:
        fused_session = runtime.create_session(
            args.models_dir / args.model / fused["file"], args.device, large_graph=True
        )
    else:
        fused_session = None
    max_batch = DEFAULT_MAX_BATCH
    graphs = version.get("step_graphs")
    if graphs is not None:
        steppers = {
            s: runtime.create_session(args.models_dir / args.model / graphs[s]["file"], args.device)
            for s in SAMPLERS
        }
    for n in args.sizes:
        reference = None
        paths = {
            name: (score_samples, d, spec, n, 0, steps, sampler) for name, d in denoisers.items()
        }
        if fused_session is not None:
            paths["service, fused graph"] = (
                fused_score_samples,
                fused_session,
                spec,
                n,
                0,
                max_batch,
            )
        if graphs is not None:
            paths["service, step graphs"] = (
                stepped_score_samples,
                steppers,
                spec,
                n,
                0,
                steps,
                sampler,
            )
        for name, work in paths.items():
            seconds, samples = best_time(args.repeats, *work)
            reference = samples if reference is None else reference
            difference = float(np.abs(samples - reference).max())
            print(f"| {n} | {name} | {seconds:.3f} | {n / seconds:,.0f} | {difference:.1e} |")


if __name__ == "__main__":
    main()
