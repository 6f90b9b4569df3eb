"""Export a score model's EMA denoiser D(x, sigma) to the model repository with a `score` card.

The ONNX file takes x [batch, *sample_shape] and sigma [batch] (a per-sample input, never a
constant frozen into the graph) in the units of the scaled data, and returns `denoised`. The
card holds the sampler's schedule (sigma_min, sigma_max, rho), sigma_data, data_scale (samples
= x_0 / data_scale), the default steps and sampler, the parity of torch and onnxruntime per
call and along a whole trajectory, and the diagnostics measured by the service's own sampler
code over the exported session, so the service reproduces them for the same request.
"""

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from lab import runtime
from lab.cards import check_name, next_version, read_card, to_jsonable, write_card
from lab.noise import seeded_generator
from lab.samplers import network_evaluations
from lab.sampling import (
    DEFAULT_MAX_BATCH,
    ScoreSpec,
    file_sampler,
    onnx_denoiser,
    score_samples,
)
from trainer.edm.fused import fuse_version, step_version
from trainer.edm.precond import Denoiser
from trainer.edm.training_loop import ScoreState, load_run, score_spec, torch_denoiser
from trainer.evaluation import diagnose_samples
from trainer.export import (
    DIAGNOSTICS_SAMPLES,
    EXPORT_BATCH,
    PARITY_TOLERANCE,
    module_to_onnx,
    save_version,
    utc_now,
)
from trainer.images import VALUE_RANGE, ImageDataset

PARITY_INPUTS = 4096
PARITY_SEED = 1
TRAJECTORY_SAMPLES = 1024
TRAJECTORY_TOLERANCE = 1e-3  # max |torch - onnxruntime| of final samples, in sample units
DIAGNOSTICS_SEED = 1  # DIAGNOSTICS_SAMPLES (trainer.export): 26,000 on stacked digits, else 2,500
INPUT_NAMES = ["x", "sigma"]
OUTPUT_NAME = "denoised"


def to_onnx(denoiser: Denoiser, sample_shape: tuple[int, ...]) -> onnx.ModelProto:
    """D -> ONNX: inputs x [batch, *sample_shape] and sigma [batch], output denoised."""
    example = (torch.zeros(EXPORT_BATCH, *sample_shape), torch.ones(EXPORT_BATCH))
    return module_to_onnx(denoiser, example, INPUT_NAMES, [OUTPUT_NAME])


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


def measure_parity(state: ScoreState, path: Path) -> dict[str, Any]:
    """torch vs onnxruntime per call and along one trajectory; RuntimeError above tolerance."""
    config, spec = state.config, score_spec(state)
    session = runtime.create_session(path, "cpu")
    x, sigma = call_inputs(spec, config.sigma_data)
    names = {"input": INPUT_NAMES[0], "sigma_input": INPUT_NAMES[1], "output": OUTPUT_NAME}
    tensors = {key: {"name": name} for key, name in names.items()}  # what onnx_denoiser reads
    onnx_denoise = onnx_denoiser(session, tensors, DEFAULT_MAX_BATCH)
    torch_denoise = torch_denoiser(state.ema.eval())
    parity = {**errors(torch_denoise(x, sigma), onnx_denoise(x, sigma)), "n_inputs": len(x)}
    steps, sampler = config.sample_steps, config.sampler
    trajectory = [
        score_samples(denoise, spec, TRAJECTORY_SAMPLES, PARITY_SEED, steps, sampler)
        for denoise in (torch_denoise, onnx_denoise)
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

    Nothing is left behind on failure. ValueError when version_dir exists, RuntimeError when
    parity fails.
    """
    if version_dir.exists():
        raise ValueError(f"{version_dir} already exists; choose another version")
    model = to_onnx(state.ema.eval(), score_spec(state).sample_shape)
    return save_version(model, version_dir, version, lambda path: measure_parity(state, path))


def export_diagnostics(
    card: dict[str, Any], model_dir: Path, version: dict[str, Any], models_dir: Path
) -> dict[str, Any]:
    """The report on the papers' number of samples for the dataset (DIAGNOSTICS_SAMPLES: 2,500,
    or 26,000 on stacked digits) drawn exactly as the service draws them for seed
    DIAGNOSTICS_SEED and the card's default steps and sampler (its session factory, batch
    size, and the version's fused trajectory graph when it matches, as with FUSED_SAMPLER=on;
    lab.sampling.file_sampler): what POST /v1/models/{name}/diagnose returns for that
    request. Image samples are judged by the classifier reference in models_dir, as the service
    would."""
    steps, sampler = card["sampler"]["steps"], card["sampler"]["name"]
    n = DIAGNOSTICS_SAMPLES.get(card["dataset"], DIAGNOSTICS_SAMPLES["default"])
    draw = file_sampler(model_dir, card, version, steps, sampler)
    report = diagnose_samples(draw(n, DIAGNOSTICS_SEED), card["dataset"], models_dir)
    return {
        **to_jsonable(report),
        "n": n,
        "seed": DIAGNOSTICS_SEED,
        "steps": steps,
        "sampler": sampler,
    }


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
    }


def export_score(
    run_dir: Path,
    models_dir: Path,
    name: str,
    version: int | None = None,
    description: str | None = None,
) -> Path:
    """Export run_dir's EMA denoiser as models_dir/<name>/<version>/model.onnx; the card's path.

    version defaults to the previous largest + 1; older versions stay listed in the card.
    ValueError for bad requests (invalid name, existing version, a non-score card of that
    name); RuntimeError when parity fails (nothing is left behind).
    """
    check_name(name)
    state = load_run(Path(run_dir))
    config = state.config
    model_dir = Path(models_dir) / name
    previous = read_card(model_dir)
    if previous is not None and previous.get("kind") != "score":
        raise ValueError(f"{model_dir} holds a {previous.get('kind')!r} card, not a score model")
    version = next_version(model_dir, previous) if version is None else version
    entry = write_version(state, model_dir / str(version), version)
    older = [v for v in (previous or {}).get("versions", []) if v["version"] != version]
    versions = sorted(older + [entry], key=lambda v: v["version"])
    card = score_card(name, description or default_description(state), state, versions)
    try:  # the default request's sampler as one graph, the step graphs (fused.py), then
        # the diagnostics
        fuse_version(model_dir, card, entry, config.sample_steps, config.sampler)
        step_version(model_dir, card, entry)
        card["diagnostics"] = export_diagnostics(card, model_dir, entry, models_dir)
    except BaseException:
        shutil.rmtree(model_dir / str(version))
        raise
    return write_card(model_dir, card)


def default_description(state: ScoreState) -> str:
    """A one-line description from the training config."""
    config = state.config
    return (
        f"EDM score model ({config.arch}) trained on {config.dataset} for {state.step} steps, "
        f"seed {config.seed}; {config.sample_steps} {config.sampler} steps by default."
    )
