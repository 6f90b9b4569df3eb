"""How a model's samples follow from a seed (lab.noise), shared by the service, the trainer's
export and the benchmarks: a gan's G(z) (generator_drawer); a score model's three ways to run
its sampler (numpy over the denoiser, the fused trajectory graph, the step graphs), and the one
place that chooses between them (sampling_path, used by score_drawer and file_sampler). A
class-conditional model's labels come from the request's LabelChoice and the seed
(lab.conditioning); a score model's are fixed per row over the whole trajectory."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from lab import runtime
from lab.cards import LATENT_KINDS, card_latent, card_version, checked_file
from lab.conditioning import (
    DEFAULT_CHOICE,
    LABEL_INPUT,
    LabelChoice,
    conditional_input,
    request_labels,
)
from lab.noise import latents, seeded_generator
from lab.samplers import (
    NO_CHURN,
    SAMPLERS,
    Churn,
    DenoiseFunction,
    churn_noise,
    network_evaluations,
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
# A fused trajectory graph's tensors (trainer/edm/fused.py): the initial noise in, samples out.
FUSED_INPUT, FUSED_OUTPUT = "noise", "samples"
# A conditional model's fused and step graphs also take its labels [batch] int64 by this name.
GRAPH_LABELS = LABEL_INPUT["name"]
# The ways a score request can be drawn (sampling_path); all give the same samples within the
# card's parities: the fused trajectory graph, the step graphs, the numpy sampler.
FUSED, STEPPED, NUMPY = "fused", "step_graphs", "numpy"
# progress(done, total): a draw's work so far, in rows through the network's runs (a GAN's or
# a fused graph's: samples; stepping: samples x steps; numpy: samples x network evaluations).
# Called with done = 0 first and done = total last; whatever it raises (a cancelled job) stops
# the draw at that run and propagates.
Progress = Callable[[int, int], None]


class Draw(Protocol):
    """draw(n, seed, progress=None) -> n samples [n, ...] float32, a function of (n, seed);
    progress does not change them."""

    def __call__(self, n: int, seed: int, progress: Progress | None = None) -> np.ndarray: ...


def counter(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    """advance(rows) that reports progress(done so far, total) after each run of `rows`; None
    without progress. Reports (0, total) at once."""
    if progress is None:
        return None
    done = 0
    progress(done, total)

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        progress(done, total)

    return advance


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


@dataclass(frozen=True)
class SamplingSettings:
    """How a score model's samples are drawn (the service's FUSED_SAMPLER, STEP_GRAPHS and
    MAX_BATCH; the defaults are its defaults). None of them changes the samples beyond the
    card's parities.

    fused_sampler: run a version's fused trajectory graph for the requests it was built for.
    step_graphs: run a version's step graphs for the other requests (else numpy).
    max_batch: rows per onnxruntime run (at most runtime.CPU_BATCH on the CPU provider).
    """

    fused_sampler: bool = True
    step_graphs: bool = True
    max_batch: int = DEFAULT_MAX_BATCH


@dataclass(frozen=True)
class ScoreGraphs:
    """The onnxruntime sessions one version of a score model samples with.

    version: the version's entry of card["versions"] (the graphs it lists; the sampler and
        steps its fused graph was built for).
    denoiser: D(x [n, *sample_shape], sigma [n]) -> [n, *sample_shape] float32.
    fused: the fused trajectory graph, noise [n, *sample_shape] -> samples, float32.
    steppers: the step graphs by sampler ("euler", "heun"): one step, the state float64.
    A session the chosen way of drawing does not run may be None (file_sampler opens one way).
    """

    version: dict
    denoiser: object | None = None
    fused: object | None = None
    steppers: dict[str, object] | None = None


def initial_noise(spec: "ScoreSpec", n: int, rng: np.random.Generator) -> np.ndarray:
    """The sampler's starting noise before scaling by sigma_max: [n, *sample_shape] float32,
    the first n * prod(sample_shape) normals of rng."""
    size = math.prod(spec.sample_shape)
    return rng.standard_normal((n, size), dtype=np.float32).reshape(n, *spec.sample_shape)


def score_samples(
    denoise: DenoiseFunction,
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
    session: object,
    spec: ScoreSpec,
    n: int,
    seed: int,
    max_batch: int,
    progress: Progress | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """score_samples without churn, through a fused trajectory graph (trainer/edm/fused.py:
    noise in, samples out, the whole sampler in one run per batch of <= max_batch rows) for the
    steps and sampler it was built with; the same initial noise, so the same samples.
    progress counts samples. labels: a conditional model's [n] int64."""
    inputs = {FUSED_INPUT: initial_noise(spec, n, seeded_generator(seed))}
    if labels is not None:
        inputs[GRAPH_LABELS] = labels
    return runtime.run_rows(session, inputs, max_batch, None, counter(progress, n))


def stepped_score_samples(
    steppers: dict[str, object],
    spec: ScoreSpec,
    n: int,
    seed: int,
    steps: int,
    sampler: str,
    churn: Churn = NO_CHURN,
    max_batch: int = DEFAULT_MAX_BATCH,
    progress: Progress | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """score_samples through a version's step graphs (trainer/edm/fused.py, step_graph):
    steppers["euler"] and ["heun"] are their sessions. Each piece of <= max_batch rows keeps its
    state (and a conditional model's labels [n] int64) in an OrtValue on the sessions' device
    (on a GPU: no host round trip per step, only the step's four numbers and, with churn, its
    noise go in); the samples come back at the end. The same noise, time steps and arithmetic
    as score_samples: the same samples. progress counts samples x steps."""
    rng, t, x = trajectory_start(spec, n, seed, steps)
    advance = counter(progress, n * steps)
    euler = steppers["euler"]
    device, rows = runtime.session_device(euler), runtime.piece_rows(euler, max_batch)
    pieces = [slice(start, start + rows) for start in range(0, n, rows)]
    states = [runtime.to_device(x[piece], device) for piece in pieces]
    quiet = [runtime.to_device(np.zeros(x[piece].shape, np.float32), device) for piece in pieces]
    fixed = [{} for _ in pieces]  # a conditional model's labels: the same at every step
    if labels is not None:
        fixed = [{GRAPH_LABELS: runtime.to_device(labels[piece], device)} for piece in pieces]
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
                **fixed[k],
            }
            states[k] = runtime.run_bound(session, {**inputs, **scalars}, STEP_OUTPUT)
            if advance is not None:
                advance(min(piece.stop, n) - piece.start)
    x = np.concatenate([state.numpy() for state in states], axis=0)
    return (x / spec.data_scale).astype(np.float32)


def sampling_path(
    version: dict, steps: int, sampler: str, churn: Churn, settings: SamplingSettings
) -> str:
    """How a request to `version` (an entry of a score card's "versions") is drawn, the one
    place that decides: FUSED when settings.fused_sampler and the version's fused graph was
    built for exactly this sampler and steps and the request has no churn; else STEPPED when
    settings.step_graphs and the version lists step graphs; else NUMPY (the denoiser step by
    step, the state on the host)."""
    fused = matching_fused(version, sampler, steps, churn.s_churn)
    if settings.fused_sampler and fused is not None:
        return FUSED
    if settings.step_graphs and "step_graphs" in version:
        return STEPPED
    return NUMPY


def score_drawer(
    card: dict,
    graphs: ScoreGraphs,
    steps: int,
    sampler: str,
    churn: Churn = NO_CHURN,
    settings: SamplingSettings = SamplingSettings(),
    choice: LabelChoice = DEFAULT_CHOICE,
) -> Draw:
    """draw(n, seed) -> [n, *sample_shape] float32: a request of `steps`, `sampler` and `churn`
    to one version of the score model `card`, run the way sampling_path chooses on `graphs`
    (which must hold that way's sessions; a ready repository entry holds all it lists); a
    conditional card's samples are drawn for the labels `choice` gives (n, seed)
    (lab.conditioning). Used by the service's route, file_sampler and the benchmarks alike."""
    spec, max_batch = ScoreSpec.from_card(card), settings.max_batch
    path = sampling_path(graphs.version, steps, sampler, churn, settings)
    labels_of = request_labels(card, choice)

    def draw(n: int, seed: int, progress: Progress | None = None) -> np.ndarray:
        labels = None if labels_of is None else labels_of(n, seed)
        if path == FUSED:  # the fused graph has its steps and sampler built in, and no churn
            return fused_score_samples(graphs.fused, spec, n, seed, max_batch, progress, labels)
        if path == STEPPED:
            args = (spec, n, seed, steps, sampler, churn, max_batch, progress, labels)
            return stepped_score_samples(graphs.steppers, *args)
        advance = counter(progress, n * network_evaluations(steps, sampler))
        denoise = onnx_denoiser(graphs.denoiser, card, max_batch, advance, labels)
        return score_samples(denoise, spec, n, seed, steps, sampler, churn)

    return draw


@dataclass(frozen=True)
class RowwiseDraw:
    """A Draw whose samples are one session's rows over seeded per-row inputs: draw(n, seed) =
    session(inputs(n, seed)), first output, in runs of <= max_batch rows. A graph's rows are
    independent (every served one is checked: tests/service/test_batching.py), so the inputs of
    several requests may be concatenated into one run and the output split back, each request
    getting the bits it gets alone (the service's dynamic batching, service/batching.py).

    session: the onnxruntime session; input_name: its noise input.
    noise: (n, seed) -> the inputs [n, ...] float32 of a request (a gan's latents).
    labels: for a class-conditional model, (label input name, (n, seed) -> labels int64 [n]).
    """

    session: object
    input_name: str
    noise: Callable[[int, int], np.ndarray]
    max_batch: int
    labels: tuple[str, Callable[[int, int], np.ndarray]] | None = None

    def inputs(self, n: int, seed: int) -> dict[str, np.ndarray]:
        """The session's inputs for (n, seed): {input_name: noise(n, seed)}, and a
        conditional model's labels."""
        inputs = {self.input_name: self.noise(n, seed)}
        if self.labels is not None:
            name, labels = self.labels
            inputs[name] = labels(n, seed)
        return inputs

    def __call__(self, n: int, seed: int, progress: Progress | None = None) -> np.ndarray:
        inputs = self.inputs(n, seed)
        return runtime.run_rows(self.session, inputs, self.max_batch, None, counter(progress, n))


def generator_drawer(
    session: object, card: dict, max_batch: int, choice: LabelChoice = DEFAULT_CHOICE
) -> RowwiseDraw:
    """draw(n, seed) -> G(z) [n, *card output shape] float32 (a float16 graph casts back): a
    gan card's session on z = latents(card_latent(card), n, seed) [n, latent_dim] float32
    (gaussian_latents unless the card declares another distribution), in runs of <= max_batch
    rows. A conditional card's session also takes the labels `choice` gives for (n, seed)
    (lab.conditioning)."""
    noise = partial(latents, card_latent(card))
    labels_of = request_labels(card, choice)
    if labels_of is None:
        return RowwiseDraw(session, card["input"]["name"], noise, max_batch)
    labels = (conditional_input(card)["name"], labels_of)
    return RowwiseDraw(session, card["input"]["name"], noise, max_batch, labels)


def file_sampler(
    model_dir: Path, card: dict, version: dict, steps: int, sampler: str, device: str = "cpu"
) -> Draw:
    """draw(n, seed) -> [n, *sample_shape] float32: what the service returns (with its default
    settings: FUSED_SAMPLER=on, STEP_GRAPHS=on, MAX_BATCH) for a churn-free request of `steps`
    and `sampler` to `version` (an entry of the score card in model_dir), drawn by score_drawer
    from sessions opened on the files themselves, only those of the chosen way. For the
    export's diagnostics and the benchmarks, which have no loaded repository."""
    settings = SamplingSettings()
    path = sampling_path(version, steps, sampler, NO_CHURN, settings)
    graphs = open_score_graphs(model_dir, version, path, device)
    return score_drawer(card, graphs, steps, sampler, NO_CHURN, settings)


def file_drawer(model_dir: Path, card: dict, number: int, device: str = "cpu") -> Draw:
    """draw(n, seed) of version `number` of the gan, vae or score model in model_dir, from its
    files as the service draws them with its default settings: a gan's G(z) or a vae's decoder
    (generator_drawer, its file checked against the card's sha256), a score model's card-default
    steps and sampler (file_sampler). ValueError for another kind."""
    version = card_version(card, number)
    if card["kind"] in LATENT_KINDS:
        session = runtime.create_session(checked_file(model_dir, version), device)
        return generator_drawer(session, card, DEFAULT_MAX_BATCH)
    if card["kind"] == "score":
        defaults = card["sampler"]
        return file_sampler(model_dir, card, version, defaults["steps"], defaults["name"], device)
    raise ValueError(f"{card['name']!r} is a {card['kind']}, drawn from no file of its own")


def open_score_graphs(model_dir: Path, version: dict, path: str, device: str) -> ScoreGraphs:
    """The sessions that `path` (FUSED, STEPPED or NUMPY) runs for `version` (an entry of the
    score card in model_dir), opened from its files for `device`; the others left None."""

    def session(spec: dict, large_graph: bool = False) -> object:
        return runtime.create_session(model_dir / spec["file"], device, large_graph)

    if path == FUSED:
        return ScoreGraphs(version, fused=session(version["fused"], large_graph=True))
    if path == STEPPED:
        graphs = version["step_graphs"]
        return ScoreGraphs(version, steppers={name: session(graphs[name]) for name in SAMPLERS})
    return ScoreGraphs(version, denoiser=session(version))


def onnx_denoiser(
    session: object,
    card: dict,
    max_batch: int,
    advance: Callable[[int], None] | None = None,
    labels: np.ndarray | None = None,
) -> DenoiseFunction:
    """A `score` card's onnxruntime session as a DenoiseFunction, run in batches of <= max_batch;
    advance(rows), when given, after each run (runtime.run_rows). A conditional card's session
    also takes labels [n] int64, row i's class for the whole trajectory (x then has n rows)."""
    x_name, sigma_name = card["input"]["name"], card["sigma_input"]["name"]
    output = card["output"]["name"]
    fixed = {} if labels is None else {conditional_input(card)["name"]: labels}

    def denoise(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        inputs = {x_name: x, sigma_name: sigma, **fixed}
        return runtime.run_rows(session, inputs, max_batch, output, advance)

    return denoise
