"""Export a score model's EMA denoiser D(x, sigma) to the model repository with a `score` card.

The ONNX file takes x [batch, *sample_shape] and sigma [batch] (a per-sample input, never a
constant frozen into the graph) in the units of the scaled data, and a class-conditional
model's labels [batch] int64 (the card's `conditional`, lab/conditioning.py), and returns
`denoised`. The card holds the sampler's schedule (sigma_min, sigma_max, rho), sigma_data,
data_scale (samples = x_0 / data_scale), the default steps and sampler, the parity of torch and
onnxruntime per call and along a whole trajectory, and the diagnostics measured by the
service's own sampler code over the exported session, so the service reproduces them for the
same request.
"""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from lab import runtime
from lab.conditioning import LABEL_INPUT
from lab.noise import seeded_generator
from lab.samplers import DenoiseFunction, network_evaluations
from lab.sampling import DEFAULT_MAX_BATCH, ScoreSpec, onnx_denoiser, score_samples
from trainer.conditioning import conditional_card, every_class
from trainer.datasets.images import VALUE_RANGE, ImageDataset
from trainer.diagnose import score_diagnostics
from trainer.edm.fused import fuse_version, step_version
from trainer.edm.precond import Denoiser
from trainer.edm.training_loop import ScoreState, load_run, score_spec, torch_denoiser
from trainer.onnx_export import (
    EXPORT_BATCH,
    PARITY_TOLERANCE,
    export_model,
    module_to_onnx,
    save_version,
    utc_now,
)

PARITY_INPUTS = 4096
PARITY_SEED = 1
TRAJECTORY_SAMPLES = 1024
TRAJECTORY_TOLERANCE = 1e-3  # max |torch - onnxruntime| of final samples, in sample units
INPUT_NAMES = ["x", "sigma"]
OUTPUT_NAME = "denoised"


def to_onnx(denoiser: Denoiser, sample_shape: tuple[int, ...], classes: int = 0) -> onnx.ModelProto:
    """D -> ONNX: inputs x [batch, *sample_shape] and sigma [batch] (and with `classes` > 0 the
    labels [batch] int64), output denoised."""
    example = (torch.zeros(EXPORT_BATCH, *sample_shape), torch.ones(EXPORT_BATCH))
    if not classes:
        return module_to_onnx(denoiser, example, INPUT_NAMES, [OUTPUT_NAME])
    labels = torch.from_numpy(every_class(EXPORT_BATCH, classes))
    names = [*INPUT_NAMES, LABEL_INPUT["name"]]
    return module_to_onnx(denoiser, (*example, labels), names, [OUTPUT_NAME])


def call_inputs(spec: ScoreSpec, sigma_data: float) -> tuple[np.ndarray, np.ndarray]:
    """PARITY_INPUTS (x, sigma) pairs: sigma log-uniform in [sigma_min, sigma_max], x ~
    N(0, (sigma^2 + sigma_data^2) I) as a noisy data point would be; float32."""
    rng = seeded_generator(PARITY_SEED)
    low, high = np.log(spec.sigma_min), np.log(spec.sigma_max)
    sigma = np.exp(rng.uniform(low, high, PARITY_INPUTS)).astype(np.float32)
    noise = rng.standard_normal((PARITY_INPUTS, *spec.sample_shape), dtype=np.float32)
    scale = np.sqrt(sigma.astype(np.float64) ** 2 + sigma_data**2)
    x = (noise * scale.reshape((-1,) + (1,) * len(spec.sample_shape))).astype(np.float32)
    return x, sigma


def errors(expected: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """max |expected - actual| and the max relative error with a floor of 1e-3 on |expected|."""
    error = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    floor = np.maximum(np.abs(expected.astype(np.float64)), 1e-3)
    return {"max_abs_error": float(error.max()), "max_rel_error": float((error / floor).max())}


def denoisers(state: ScoreState, path: Path, n: int) -> tuple[DenoiseFunction, ...]:
    """(the torch D, the ONNX file's D on the CPU) for inputs of n rows, a conditional model's
    of every class in turn (trainer.conditioning.every_class)."""
    names = {"input": INPUT_NAMES[0], "sigma_input": INPUT_NAMES[1], "output": OUTPUT_NAME}
    tensors = {key: {"name": name} for key, name in names.items()}  # what onnx_denoiser reads
    tensors["conditional"] = {"input": LABEL_INPUT}
    labels = every_class(n, state.config.classes)
    session = runtime.create_session(path, "cpu")
    return (
        torch_denoiser(state.ema.eval(), labels=labels),
        onnx_denoiser(session, tensors, DEFAULT_MAX_BATCH, labels=labels),
    )


def measure_parity(state: ScoreState, path: Path) -> dict[str, Any]:
    """torch vs onnxruntime per call and along one trajectory (a conditional model's inputs of
    every class); RuntimeError above tolerance."""
    config, spec = state.config, score_spec(state)
    x, sigma = call_inputs(spec, config.sigma_data)
    torch_denoise, onnx_denoise = denoisers(state, path, len(x))
    parity = {**errors(torch_denoise(x, sigma), onnx_denoise(x, sigma)), "n_inputs": len(x)}
    steps, sampler = config.sample_steps, config.sampler
    trajectory = [
        score_samples(denoise, spec, TRAJECTORY_SAMPLES, PARITY_SEED, steps, sampler)
        for denoise in denoisers(state, path, TRAJECTORY_SAMPLES)
    ]
    parity["trajectory"] = {
        **errors(*trajectory),
        "n": TRAJECTORY_SAMPLES,
        "seed": PARITY_SEED,
        "steps": steps,
        "sampler": sampler,
    }
    if not parity["max_abs_error"] <= PARITY_TOLERANCE:  # also catches NaN
        raise RuntimeError(f"ONNX parity failed: {parity} (tolerance {PARITY_TOLERANCE})")
    if not parity["trajectory"]["max_abs_error"] <= TRAJECTORY_TOLERANCE:
        raise RuntimeError(f"ONNX trajectory parity failed: {parity['trajectory']}")
    return parity


def write_version(state: ScoreState, version_dir: Path, version: int) -> dict[str, Any]:
    """Export, save, hash and parity-check one version; the card's `versions` entry.

    Nothing is left behind on failure (RuntimeError when parity fails).
    """
    model = to_onnx(state.ema.eval(), score_spec(state).sample_shape, state.config.classes)
    return save_version(model, version_dir, version, lambda path: measure_parity(state, path))


def score_card(
    name: str, description: str, state: ScoreState, versions: list[dict]
) -> dict[str, Any]:
    """The `score` card (without diagnostics) for the newest version of `state`'s model."""
    config, spec = state.config, score_spec(state)
    shape = [-1, *spec.sample_shape]
    value_range = list(VALUE_RANGE) if isinstance(state.dataset, ImageDataset) else None
    return {
        "schema_version": 1,
        "name": name,
        "kind": "score",
        "description": description,
        "created": utc_now(),
        "versions": versions,
        "input": {"name": INPUT_NAMES[0], "dtype": "float32", "shape": shape},
        "sigma_input": {"name": INPUT_NAMES[1], "dtype": "float32", "shape": [-1]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": shape},
        "value_range": value_range,
        "sigma_data": config.sigma_data,
        "data_scale": state.data_scale,
        "sampler": {
            "name": config.sampler,
            "steps": config.sample_steps,
            "sigma_min": config.sigma_min,
            "sigma_max": config.sigma_max,
            "rho": config.rho,
            "network_evaluations": network_evaluations(config.sample_steps, config.sampler),
        },
        "reference": config.dataset,
        "dataset": config.dataset,
        "architecture": state.architecture,
        "training": config.to_dict(),
    } | conditional_card(config.dataset, config.classes)


def export_score(
    run_dir: Path,
    models_dir: Path,
    name: str,
    version: int | None = None,
    description: str | None = None,
) -> Path:
    """Export run_dir's EMA denoiser as models_dir/<name>/<version>/model.onnx, with the fused
    and step graphs of its default sampler (trainer.edm.fused); the card's path.

    version defaults to the previous largest + 1; older versions stay listed in the card.
    ValueError for bad requests (invalid name, existing version, a non-score card of that
    name); RuntimeError when parity fails (nothing is left behind).
    """
    state = load_run(Path(run_dir))
    config = state.config

    def write(version_dir: Path, number: int) -> dict[str, Any]:
        return write_version(state, version_dir, number)

    def make_card(model_dir: Path, entry: dict, versions: list[dict]) -> dict[str, Any]:
        card = score_card(name, description or default_description(state), state, versions)
        # The default request's sampler as one graph and the step graphs, before the
        # diagnostics, which the service would draw through them.
        fuse_version(model_dir, card, entry, config.sample_steps, config.sampler)
        step_version(model_dir, card, entry)
        card["diagnostics"] = score_diagnostics(card, model_dir, entry, models_dir)
        return card

    return export_model(models_dir, name, "score", version, write, make_card)


def default_description(state: ScoreState) -> str:
    """A one-line description from the training config."""
    config = state.config
    conditional = f", conditional on {config.classes} classes" if config.classes else ""
    return (
        f"EDM score model ({config.arch}{conditional}) trained on {config.dataset} for "
        f"{state.step} steps, seed {config.seed}; {config.sample_steps} {config.sampler} steps by "
        "default."
    )
