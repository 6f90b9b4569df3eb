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
serve; STEP_GRAPHS). The service's rows are drawn as the service draws them, by
lab.sampling.score_drawer under the FUSED_SAMPLER / STEP_GRAPHS settings that choose each way.
Each time is the best of --repeats runs, imports and session creation excluded. Prints a
markdown table.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from lab import runtime
from lab.samplers import NO_CHURN, network_evaluations
from lab.sampling import (
    FUSED,
    NUMPY,
    STEPPED,
    Draw,
    SamplingSettings,
    ScoreSpec,
    open_score_graphs,
    sampling_path,
    score_drawer,
    score_samples,
)
from service.config import REPO_MODELS

# The service's ways to draw, each a row with the settings that choose it (FUSED_SAMPLER,
# STEP_GRAPHS), in the table's order; the first is the reference of the difference column.
SERVICE_PATHS = {
    NUMPY: ("service, step by step", SamplingSettings(fused_sampler=False, step_graphs=False)),
    FUSED: ("service, fused graph", SamplingSettings(fused_sampler=True, step_graphs=False)),
    STEPPED: ("service, step graphs", SamplingSettings(fused_sampler=False, step_graphs=True)),
}


def best_time(repeats: int, draw: Draw, n: int) -> tuple[float, np.ndarray]:
    """(the best wall time in seconds of `repeats` calls of draw(n, 0), its last result)."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = draw(n, 0)
        times.append(time.perf_counter() - started)
    return min(times), result


def service_drawers(
    model_dir: Path, card: dict, steps: int, sampler: str, device: str
) -> tuple[dict[str, Draw], str]:
    """({row label: draw(n, seed)} for each way the service can draw this request to the card's
    newest version, through lab.sampling.score_drawer with the settings that choose that way (a
    way the version lacks is left out), the provider running the step-by-step row)."""
    version, drawers, provider = card["versions"][-1], {}, ""
    for path, (label, settings) in SERVICE_PATHS.items():
        if sampling_path(version, steps, sampler, NO_CHURN, settings) == path:
            graphs = open_score_graphs(model_dir, version, path, device)
            drawers[label] = score_drawer(card, graphs, steps, sampler, NO_CHURN, settings)
            provider = provider or runtime.session_provider(graphs.denoiser)
    return drawers, provider


def torch_drawer(run_dir: Path, card: dict, steps: int, sampler: str) -> Draw:
    """draw(n, seed): the same numpy sampler over the run's torch EMA network (torch threads as
    many as ORT_INTRA_OP_THREADS gives onnxruntime)."""
    import torch

    from trainer.edm.training_loop import load_run, torch_denoiser

    torch.set_num_threads(int(os.environ.get("ORT_INTRA_OP_THREADS", "1")))
    denoise, spec = torch_denoiser(load_run(run_dir).ema.eval()), ScoreSpec.from_card(card)
    return lambda n, seed: score_samples(denoise, spec, n, seed, steps, sampler)


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
    steps, sampler, model_dir = card["sampler"]["steps"], "heun", args.models_dir / args.model
    service, where = service_drawers(model_dir, card, steps, sampler, args.device)
    first = SERVICE_PATHS[NUMPY][0]
    drawers = {first: service.pop(first)}
    if args.run_dir is not None:
        drawers["plain PyTorch"] = torch_drawer(args.run_dir, card, steps, sampler)
    drawers |= service
    nfe = network_evaluations(steps, sampler)
    print(f"{args.model}: {steps} {sampler} steps ({nfe} network evaluations), {where}\n")
    print("| n | path | seconds | samples/s | max abs difference |")
    print("| --- | --- | --- | --- | --- |")
    for n in args.sizes:
        reference = None
        for name, draw in drawers.items():
            seconds, samples = best_time(args.repeats, draw, n)
            reference = samples if reference is None else reference
            difference = float(np.abs(samples - reference).max())
            print(f"| {n} | {name} | {seconds:.3f} | {n / seconds:,.0f} | {difference:.1e} |")


if __name__ == "__main__":
    main()
