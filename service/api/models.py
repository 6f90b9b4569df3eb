"""Models (GANs, score models and ensembles; classifiers and embeddings listed too): list,
describe, draw samples, diagnose."""

import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from flask import Blueprint, Response
from flask import request as http_request

from lab.cards import ENSEMBLE, FEATURE_KINDS, SERVABLE_KINDS, WEIGHT_TOLERANCE, check_members
from lab.conditioning import DEFAULT_CHOICE, LabelChoice, check_labels
from lab.diagnostics.classes import Classes, request_classes
from lab.diagnostics.members import Members
from lab.ensembles import ensemble_drawer, member_assignment
from lab.noise import MAX_SEED, random_seed
from lab.samplers import MAX_CHURN, NO_CHURN, SAMPLERS, Churn, network_evaluations
from lab.sampling import (
    Draw,
    Progress,
    RowwiseDraw,
    SamplingSettings,
    generator_drawer,
    score_drawer,
)
from service import metrics
from service.api.diagnostics import REPORT_BYTES, REPORT_FORMATS, diagnosis_response, unguarded
from service.api.inference import guarded_inference, run_inputs
from service.api.jobs import accept_job, prefers_async
from service.api.requests import (
    choice_field,
    int_field,
    json_body,
    negotiate,
    number_field,
    ready_entry,
    repository,
    resolve_reference,
    service_config,
)
from service.errors import ApiError
from service.floats import json_bytes
from service.job_runner import JobResult
from service.repository import Entry, Version

blueprint = Blueprint("models", __name__, url_prefix="/v1/models")
SAMPLE_FORMATS = ("application/json", "application/x-npy")
SCORE_FIELDS = ("steps", "sampler", "churn")
CLASS_FIELDS = ("labels", "class_mix")  # conditional models only (lab/conditioning.py)
LIST_VIEWS = ("full", "compact")
# Bytes per value of a samples result, at most: NPY's float32, JSON's shortest decimal + comma.
RESULT_VALUE_BYTES = {"application/x-npy": 4, "application/json": 24}


def describe(entry: Entry) -> dict:
    """Name, kind, readiness, the provider in use, each version's precision and the card
    (None when unreadable)."""
    return {
        "name": entry.name,
        "kind": entry.kind,
        "ready": entry.ready,
        "error": entry.error,
        "provider": entry.provider,
        "versions": sorted(entry.versions),
        "precision": {str(n): entry.versions[n].precision for n in sorted(entry.versions)},
        "card": entry.card,
    }


def summarise(entry: Entry) -> dict:
    """The compact listing's object: name, kind, readiness, versions, provider (no card)."""
    return {
        "name": entry.name,
        "kind": entry.kind,
        "ready": entry.ready,
        "versions": sorted(entry.versions),
        "provider": entry.provider,
    }


@blueprint.get("")
def list_models() -> dict:
    """?view=full (default: each model with its card) or ?view=compact (without cards): the
    generators, and the classifier and embedding models references and uploads name."""
    view = choice_field(http_request.args, "view", "full", LIST_VIEWS)
    kinds = SERVABLE_KINDS + FEATURE_KINDS
    entries = [e for e in repository().entries.values() if e.kind in kinds or not e.card]
    shape = summarise if view == "compact" else describe
    return {"models": [shape(entry) for entry in entries]}


@blueprint.get("/<name>")
def get_model(name: str) -> dict:
    entry = repository().get(name)
    if entry is None or entry.kind == "reference":
        raise ApiError(404, f"no model named {name!r}", "unknown-model")
    return describe(entry)


@dataclass(frozen=True)
class SampleRequest:
    """A validated samples/diagnose body. steps, sampler and churn: score models only."""

    entry: Entry
    version: Version
    n: int
    seed: int
    steps: int | None = None
    sampler: str | None = None
    churn: float = 0.0
    weights: tuple[float, ...] | None = None  # an ensemble's mix when the request sets one
    choice: LabelChoice | None = None  # a conditional model's labels (its card's mix: default)

    def mix(self) -> tuple[float, ...]:
        """An ensemble's weights for this request: the request's, else its version's."""
        return self.weights or tuple(spec["weight"] for spec in self.version.card["members"])

    def echo(self) -> dict:
        """What the response repeats of the request (sampler settings for score models, the
        members and the weights drawn with for ensembles)."""
        echoed = {"model": self.entry.name, "version": self.version.number, "seed": self.seed}
        if self.choice is not None:
            echoed |= self.choice.echo()
        if self.entry.kind == ENSEMBLE:
            echoed["members"] = with_weights(self.version.card["members"], self.mix())
        if self.entry.kind == "score":
            nfe = network_evaluations(self.steps, self.sampler)
            echoed |= {"steps": self.steps, "sampler": self.sampler, "network_evaluations": nfe}
            echoed |= {"churn": self.churn} if self.churn else {}
        return echoed

    def body(self) -> dict:
        """The request as a body that draws the same samples (the seed drawn, if none was sent)."""
        body = {"n": self.n, "seed": self.seed, "version": self.version.number}
        if self.weights is not None:
            body["weights"] = list(self.weights)
        if self.choice is not None:
            body |= self.choice.echo()
        if self.entry.kind == "score":
            body |= {"steps": self.steps, "sampler": self.sampler, "churn": self.churn}
        return body

    def result_bytes(self, media_type: str) -> int:
        """The most bytes its samples answer in `media_type` may take (a job's reservation)."""
        values = self.n * int(np.prod(self.entry.card["output"]["shape"][1:]))
        return values * RESULT_VALUE_BYTES[media_type] + 4 * self.n + 4096

    def members(self) -> Members | None:
        """Which member draws each sample (lab.ensembles), for an ensemble; None otherwise."""
        if self.entry.kind != ENSEMBLE:
            return None
        specs, weights = self.version.card["members"], self.mix()
        names = tuple(spec["model"] for spec in specs)
        versions = tuple(spec["version"] for spec in specs)
        return Members(names, versions, weights, member_assignment(weights, self.n, self.seed))

    def classes(self) -> Classes | None:
        """The class each sample is drawn for (lab.conditioning), for a conditional model;
        None otherwise."""
        if self.choice is None:
            return None
        return request_classes(self.entry.card, self.choice, self.n, self.seed)

    def headers(self) -> dict[str, str]:
        """X-Seed and X-Model-Version (+ X-Steps and X-Sampler for score models), on every
        answer to the request whatever its format."""
        headers = {"X-Seed": str(self.seed), "X-Model-Version": str(self.version.number)}
        if self.entry.kind == "score":
            headers |= {"X-Steps": str(self.steps), "X-Sampler": self.sampler}
        return headers


def sample_request(name: str, job: bool = False) -> SampleRequest:
    """The validated JSON body {"n", "seed", "version"} (+ "steps", "sampler", "churn" for
    score models, "weights" for ensembles, which other kinds refuse with 400 rather than
    silently ignore); n up to MAX_SAMPLES, or MAX_JOB_SAMPLES for a job."""
    config = service_config()
    entry = ready_entry(name, *SERVABLE_KINDS)
    body = json_body(("n", "seed", "version", *SCORE_FIELDS, "weights", *CLASS_FIELDS))
    n = int_field(
        body, "n", config.default_samples, 1, max(config.max_samples, config.max_job_samples)
    )
    if n > (config.max_job_samples if job else config.max_samples):
        raise ApiError(
            400,
            f"'n' must be at most {config.max_samples} (MAX_SAMPLES) in one request, or "
            f"{config.max_job_samples} (MAX_JOB_SAMPLES) as a job (send 'Prefer: respond-async')",
            "invalid-field",
        )
    seed = int_field(body, "seed", None, 0, MAX_SEED)
    seed = random_seed() if seed is None else seed  # drawn only when none was sent
    number = int_field(body, "version", entry.latest_version(), 1, 2**31)
    version = entry.versions.get(number)
    if version is None:
        raise ApiError(
            404,
            f"{name} has no version {number} (versions: {sorted(entry.versions)})",
            "unknown-version",
        )
    if entry.kind != ENSEMBLE:
        refuse(body, ("weights",), f"for ensembles only; {name} is a {entry.kind}")
    choice = None
    if "conditional" not in (entry.card or {}):
        refuse(body, CLASS_FIELDS, f"for class-conditional models only; {name} is not one")
    else:
        choice = label_choice(body, entry.card, n)
    if entry.kind == ENSEMBLE:
        why = "an ensemble: its score members draw with their card's steps and sampler"
        refuse(body, SCORE_FIELDS, f"for score models only; {name} is {why}")
        return SampleRequest(entry, version, n, seed, weights=mix_field(body, version))
    if entry.kind != "score":
        why = f"a {entry.kind}, drawn in one pass"
        refuse(body, SCORE_FIELDS, f"for score models only; {name} is {why}")
        return SampleRequest(entry, version, n, seed, choice=choice)
    defaults = entry.card["sampler"]
    steps = int_field(body, "steps", defaults["steps"], 1, config.max_steps)
    sampler = choice_field(body, "sampler", defaults["name"], SAMPLERS)
    churn = number_field(body, "churn", 0.0, 0.0, MAX_CHURN)
    return SampleRequest(entry, version, n, seed, steps, sampler, churn, choice=choice)


def label_choice(body: dict, card: dict, n: int) -> LabelChoice:
    """A conditional model's `labels` (one class for every sample, or a list of n) or
    `class_mix` (one weight in [0, 1] per class, summing to 1), at most one of them; neither:
    the card's class weights. 400 naming the fix otherwise."""
    classes = card["conditional"]["classes"]
    labels, mix = body.get("labels"), body.get("class_mix")
    if labels is not None and mix is not None:
        raise ApiError(
            400, "send 'labels' or 'class_mix', not both (labels fix every class)", "invalid-field"
        )
    if labels is not None:
        return LabelChoice(labels=labels_field(labels, classes, n))
    if mix is not None:
        return LabelChoice(mix=class_mix_field(mix, classes))
    return LabelChoice()


def labels_field(value: object, classes: int, n: int) -> int | tuple[int, ...]:
    """body["labels"]: an integer class, or a list of n of them, each in 0..classes-1."""
    values = value if isinstance(value, list) else [value]
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if not integers or (isinstance(value, list) and len(values) != n):
        raise ApiError(
            400,
            f"'labels' must be one class (an integer) or a list of n = {n} integers, one per "
            f"sample, got {json.dumps(value)[:60]}",
            "invalid-field",
        )
    try:  # Python ints compared as they are: one past int64 still gets the range, not an overflow
        check_labels(np.asarray(values, dtype=object), classes)
    except ValueError as error:
        raise ApiError(400, f"'labels': {error}", "invalid-field") from None
    return tuple(values) if isinstance(value, list) else value


def class_mix_field(value: object, classes: int) -> tuple[float, ...]:
    """body["class_mix"]: `classes` numbers in [0, 1] summing to 1 (within WEIGHT_TOLERANCE)."""
    numbers = value if isinstance(value, list) and len(value) == classes else []
    if not numbers or any(isinstance(w, bool) or not isinstance(w, int | float) for w in numbers):
        raise ApiError(
            400,
            f"'class_mix' must be a list of {classes} numbers, one weight per class, "
            f"got {json.dumps(value)[:60]}",
            "invalid-field",
        )
    total = math.fsum(numbers)
    if not all(0.0 <= w <= 1.0 for w in numbers) or abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ApiError(
            400,
            f"'class_mix' must be weights in [0, 1] summing to 1, got a sum of {total:.6g}; "
            "divide each by their sum",
            "invalid-field",
        )
    return tuple(float(w) for w in numbers)


def refuse(body: dict, fields: tuple[str, ...], why: str) -> None:
    """400 naming the `fields` the body sets, and why the model takes none of them."""
    given = [field for field in fields if body.get(field) is not None]
    if given:
        raise ApiError(400, f"{', '.join(repr(f) for f in given)}: {why}", "invalid-field")


def mix_field(body: dict, version: Version) -> tuple[float, ...] | None:
    """body["weights"]: one number in [0, 1] per member of the ensemble's version, summing to 1
    (lab.cards.check_members), or None when absent; 400 naming the fix otherwise."""
    value, specs = body.get("weights"), version.card["members"]
    if value is None:
        return None
    numbers = value if isinstance(value, list) and len(value) == len(specs) else []
    if not numbers or any(isinstance(w, bool) or not isinstance(w, int | float) for w in numbers):
        names = ", ".join(spec["model"] for spec in specs)
        raise ApiError(
            400,
            f"'weights' must be a list of {len(specs)} numbers, one per member ({names}), "
            f"got {json.dumps(value)[:60]}",
            "invalid-field",
        )
    if not all(0.0 <= w <= 1.0 for w in numbers):
        raise ApiError(400, f"'weights' must lie in [0, 1], got {numbers}", "invalid-field")
    try:
        check_members(with_weights(specs, numbers), "'weights'")
    except ValueError as error:
        raise ApiError(400, str(error), "invalid-field") from None
    return tuple(float(w) for w in numbers)


def with_weights(specs: list[dict], weights: Sequence[float]) -> list[dict]:
    """An ensemble version's members (model, version, weight) with other weights."""
    return [{**spec, "weight": weight} for spec, weight in zip(specs, weights, strict=True)]


def drawer(request: SampleRequest) -> Draw:
    """draw(n, seed, progress) of the request's model version (version_drawer)."""
    settings = service_config().sampling()
    steps, sampler, churn = request.steps, request.sampler, Churn(request.churn)
    entry, version, weights = request.entry, request.version, request.weights
    choice = request.choice or DEFAULT_CHOICE
    return version_drawer(entry, version, settings, steps, sampler, churn, weights, choice)


def version_drawer(
    entry: Entry,
    version: Version,
    settings: SamplingSettings,
    steps: int | None = None,
    sampler: str | None = None,
    churn: Churn = NO_CHURN,
    weights: tuple[float, ...] | None = None,
    choice: LabelChoice = DEFAULT_CHOICE,
) -> Draw:
    """draw(n, seed, progress) of one model version: G(z) with z = latents(card_latent(card),
    n, seed) for a gan (lab.sampling.generator_drawer: N(0, I) unless the card declares another
    distribution); for a score model the sampler's integration from seeded noise (`steps` and
    `sampler`, the card's defaults when None), run as lab.sampling.score_drawer chooses by
    FUSED_SAMPLER and STEP_GRAPHS; for an ensemble its members' drawers (score members with
    their card's defaults, no churn) mixed by lab.ensembles.ensemble_drawer with `weights`
    (the version's when None). A conditional gan or score model draws the labels `choice`
    gives."""
    if entry.kind == ENSEMBLE:
        draws = [version_drawer(m.entry, m.version, settings) for m in version.members]
        return ensemble_drawer(draws, weights or [member.weight for member in version.members])
    if entry.kind == "score":
        steps = steps or entry.card["sampler"]["steps"]
        sampler = sampler or entry.card["sampler"]["name"]
        graphs = version.score_graphs()
        return score_drawer(entry.card, graphs, steps, sampler, churn, settings, choice)
    return generator_drawer(version.session, entry.card, settings.max_batch, choice)


def draw(request: SampleRequest) -> np.ndarray:
    """The samples [n, ...] float32, a function of the request: a gan's as one run over its
    latents (in the batch queue when batching takes it, merged with concurrent requests' up to
    BATCH_MAX_ROWS; else under the guard, in the request's thread), a score model's or an
    ensemble's on the guard's pool under the deadline."""
    draw = drawer(request)
    if isinstance(draw, RowwiseDraw) and request.n <= service_config().max_batch:
        inputs = draw.inputs(request.n, request.seed)
        return run_inputs(request.entry, request.version, inputs, draw.session)
    work = partial(draw, request.n, request.seed)
    return guarded_inference(request.entry, request.version, request.n, work, bounded=False)


def draw_in_job(request: SampleRequest, progress: Progress) -> np.ndarray:
    """The same samples as draw(request), in a job's thread: no guard, no deadline, progress
    reported after each onnxruntime run."""
    started = time.perf_counter()
    samples = drawer(request)(request.n, request.seed, progress)
    seconds = time.perf_counter() - started
    metrics.observe_inference(request.entry.name, request.version.number, request.n, seconds)
    return samples


@blueprint.post("/<name>/samples")
def samples(name: str) -> Response:
    """Body {"n", "seed", "version"} (+ "steps", "sampler", "churn" for score models): n
    samples, a function of the body (the seed fixes all noise)."""
    job = prefers_async()
    request = sample_request(name, job)
    media_type = negotiate(SAMPLE_FORMATS)
    if job:
        work = partial(samples_job, request, media_type)
        return accept_job(work, request.result_bytes(media_type), media_type, request.body())
    return samples_response(request, draw(request), media_type)


def samples_response(request: SampleRequest, batch: np.ndarray, media_type: str) -> Response:
    """The samples answer: NPY, or JSON with the echoed request; the request's headers."""
    if media_type == "application/x-npy":
        return Response(npy_bytes(batch), mimetype=media_type, headers=request.headers())
    samples = np.ascontiguousarray(batch, np.float32)  # written as 0.1, not 0.10000000149011612
    body = json_bytes({**request.echo(), "shape": list(batch.shape), "samples": samples})
    return Response(body, mimetype=media_type, headers=request.headers())


def samples_job(
    request: SampleRequest, media_type: str, job_id: str, progress: Progress
) -> JobResult:
    """A samples job's result: the bytes the synchronous answer would have."""
    response = samples_response(request, draw_in_job(request, progress), media_type)
    return JobResult(response.get_data(), media_type, request.headers())


@blueprint.post("/<name>/diagnose")
def diagnose_model(name: str) -> Response:
    """The samples body: generate n samples and diagnose them against the model's reference,
    in one call (the report gains the echoed request: model, version, seed and, for score
    models, steps, sampler, network_evaluations), and the samples answer's headers."""
    job = prefers_async()
    request = sample_request(name, job)
    limit = service_config().max_upload_samples
    if request.n > limit:
        raise ApiError(
            400, f"'n' must be at most {limit} to diagnose (MAX_UPLOAD_SAMPLES)", "invalid-field"
        )
    media_type = negotiate(REPORT_FORMATS)
    resolved = resolve_reference(request.entry.card["reference"])
    if job:
        work = partial(diagnose_job, request, media_type)
        return accept_job(work, REPORT_BYTES, media_type, request.body())
    batch = draw(request)
    members, classes = request.members(), request.classes()
    response = diagnosis_response(
        batch, resolved, media_type, request.echo(), members=members, classes=classes
    )
    response.headers.update(request.headers())
    return response


def diagnose_job(
    request: SampleRequest, media_type: str, job_id: str, progress: Progress
) -> JobResult:
    """A diagnose job's result: the report (or figure) the synchronous answer would have; the
    progress counts the generation."""
    batch = draw_in_job(request, progress)
    resolved = resolve_reference(request.entry.card["reference"])
    echo, members = request.echo(), request.members()
    response = diagnosis_response(
        batch, resolved, media_type, echo, unguarded, members, request.classes()
    )
    return JobResult(response.get_data(), media_type, request.headers())


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
