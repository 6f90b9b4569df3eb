"""How a model's samples follow from a seed (lab.noise), shared by the service, the trainer's
export and the benchmarks."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab import runtime
from lab.noise import seeded_generator
from lab.samplers import (
    NO_CHURN,
    SAMPLERS,
    Churn,
    Denoiser,
    churn_noise,
    plan,
    sample,
    time_steps,
)

# Generation runs in pieces of at most this many rows (the service's MAX_BATCH default).
DEFAULT_MAX_BATCH = 8_192
# A step graph's tensors (trainer/edm/fused.py, step_graph): the state, the churn noise, the
# step's numbers, and the next state.
STEP_STATE, STEP_NOISE, STEP_OUTPUT = "x", "noise", "x_next"
STEP_SCALARS = ("noise_scale", "t_hat", "t_next", "step")


@dataclass(frozen=True)
class ScoreSpec:
    """What sampling a score model needs beyond its denoiser (a `score` card's fields).

    sample_shape: one sample's shape, e.g. (2,) or (3, 8, 8).
    sigma_min, sigma_max, rho: the time steps of Eq. 5 (lab.samplers.time_steps).
    data_scale: the network's data are the samples times data_scale (std sigma_data).
    """

    sample_shape: tuple[int, ...]
    sigma_min: float
    sigma_max: float
    rho: float
    data_scale: float

    @classmethod
    def from_card(cls, card: dict) -> "ScoreSpec":
        schedule = card["sampler"]
        return cls(
            sample_shape=tuple(card["input"]["shape"][1:]),
            sigma_min=schedule["sigma_min"],
            sigma_max=schedule["sigma_max"],
            rho=schedule["rho"],
            data_scale=card["data_scale"],
        )


def initial_noise(spec: "ScoreSpec", n: int, rng: np.random.Generator) -> np.ndarray:
    """The sampler's starting noise before scaling by sigma_max: [n, *sample_shape] float32,
    the first n * prod(sample_shape) normals of rng."""
    size = math.prod(spec.sample_shape)
    return rng.standard_normal((n, size), dtype=np.float32).reshape(n, *spec.sample_shape)


def score_samples(
    denoise: Denoiser,
    spec: ScoreSpec,
    n: int,
    seed: int,
    steps: int,
    sampler: str,
    churn: Churn = NO_CHURN,
) -> np.ndarray:
    """n samples [n, *sample_shape] float32 of a score model, a function of the arguments.

    The initial noise is gaussian_latents(n, prod(sample_shape), seed) times sigma_max; churn
    noise continues the same PCG64 stream. The sampler runs on all n rows at once (the
    denoiser splits them into batches), so the batch size never changes the samples.
    """
    rng, t, x = trajectory_start(spec, n, seed, steps)
    x = sample(denoise, x, t, sampler, churn, rng)
    return (x / spec.data_scale).astype(np.float32)


def trajectory_start(
    spec: ScoreSpec, n: int, seed: int, steps: int
) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """(the request's generator, after its initial noise; the time steps [steps + 1]; the
    starting state x_0 = noise * t_0, float64 [n, *sample_shape])."""
    rng = seeded_generator(seed)
    noise = initial_noise(spec, n, rng)
    t = time_steps(steps, spec.sigma_min, spec.sigma_max, spec.rho)
    return rng, t, noise.astype(np.float64) * t[0]


def matching_fused(version: dict, sampler: str, steps: int, churn: float = 0.0) -> dict | None:
    """A card version's `fused` entry when its graph draws exactly this request (the same
    sampler and steps, no churn), else None."""
    fused = version.get("fused")
    if fused is None or churn or (fused["sampler"], fused["steps"]) != (sampler, steps):
        return None
    return fused


def fused_score_samples(
    session: object, spec: ScoreSpec, n: int, seed: int, max_batch: int
) -> np.ndarray:
    """score_samples without churn, through a fused trajectory graph (trainer/edm/fused.py:
    noise in, samples out, the whole sampler in one run per batch of <= max_batch rows) for the
    steps and sampler it was built with; the same initial noise, so the same samples."""
    noise = initial_noise(spec, n, seeded_generator(seed))
    return runtime.run_rows(session, {"noise": noise}, max_batch)


def stepped_score_samples(
    steppers: dict[str, object],
    spec: ScoreSpec,
    n: int,
    seed: int,
    steps: int,
    sampler: str,
    churn: Churn = NO_CHURN,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> np.ndarray:
    """score_samples through a version's step graphs (trainer/edm/fused.py, step_graph):
    steppers["euler"] and ["heun"] are their sessions. Each piece of <= max_batch rows keeps its
    state in an OrtValue on the sessions' device (on a GPU: no host round trip per step, only
    the step's four numbers and, with churn, its noise go in); the samples come back at the
    end. The same noise, time steps and arithmetic as score_samples: the same samples."""
    rng, t, x = trajectory_start(spec, n, seed, steps)
    euler = steppers["euler"]
    device, rows = runtime.session_device(euler), runtime.piece_rows(euler, max_batch)
    pieces = [slice(start, start + rows) for start in range(0, n, rows)]
    states = [runtime.to_device(x[piece], device) for piece in pieces]
    quiet = [runtime.to_device(np.zeros(x[piece].shape, np.float32), device) for piece in pieces]
    for step in plan(t, sampler, churn):
        extra = churn_noise(churn, x.shape, rng) if step.churned else None
        scalars = {
            STEP_SCALARS[0]: np.array([step.noise_scale], np.float32),
            STEP_SCALARS[1]: np.array([step.t_hat]),
            STEP_SCALARS[2]: np.array([step.t_next]),
            STEP_SCALARS[3]: np.array([step.t_next - step.t_hat]),
        }
        session = steppers["heun" if step.heun else "euler"]
        for k, piece in enumerate(pieces):
            inputs = {
                STEP_STATE: states[k],
                STEP_NOISE: quiet[k] if extra is None else extra[piece],
            }
            states[k] = runtime.run_bound(session, {**inputs, **scalars}, STEP_OUTPUT)
    x = np.concatenate([state.numpy() for state in states], axis=0)
    return (x / spec.data_scale).astype(np.float32)


def file_sampler(
    model_dir: Path, card: dict, version: dict, steps: int, sampler: str, device: str = "cpu"
) -> Callable[[int, int], np.ndarray]:
    """draw(n, seed): what the service returns for a churn-free request of `steps` and `sampler`
    to `version` (an entry of the score card in model_dir), from the files themselves: the
    version's fused trajectory graph when it matches (FUSED_SAMPLER=on), else its step graphs
    (STEP_GRAPHS=on), else the denoiser step by step in numpy. For the export's diagnostics and
    the benchmarks, which have no loaded repository."""
    spec, max_batch = ScoreSpec.from_card(card), DEFAULT_MAX_BATCH
    fused = matching_fused(version, sampler, steps)
    if fused is not None:
        session = runtime.create_session(model_dir / fused["file"], device, large_graph=True)
        return lambda n, seed: fused_score_samples(session, spec, n, seed, max_batch)
    if "step_graphs" in version:
        graphs = version["step_graphs"]
        steppers = {
            s: runtime.create_session(model_dir / graphs[s]["file"], device) for s in SAMPLERS
        }
        return lambda n, seed: stepped_score_samples(
            steppers, spec, n, seed, steps, sampler, max_batch=max_batch
        )
    denoise = onnx_denoiser(
        runtime.create_session(model_dir / version["file"], device), card, max_batch
    )
    return lambda n, seed: score_samples(denoise, spec, n, seed, steps, sampler)


def onnx_denoiser(session: object, card: dict, max_batch: int) -> Denoiser:
    """A `score` card's onnxruntime session as a Denoiser, run in batches of <= max_batch."""
    x_name, sigma_name = card["input"]["name"], card["sigma_input"]["name"]
    output = card["output"]["name"]

    def denoise(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        return runtime.run_rows(session, {x_name: x, sigma_name: sigma}, max_batch, output)

    return denoise
