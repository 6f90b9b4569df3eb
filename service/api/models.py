"""Models (GANs and score models): list, describe, draw samples, diagnose."""

import io
import secrets
from dataclasses import dataclass

import numpy as np
from flask import Blueprint, Response, jsonify

from lab.cards import SERVABLE_KINDS
from lab.noise import MAX_SEED, gaussian_latents
from lab.samplers import MAX_CHURN, SAMPLERS, network_evaluations
from service.api.common import (
    choice_field,
    int_field,
    json_body,
    negotiate,
    number_field,
    ready_entry,
    repository,
    resolve_reference,
    run_generator,
    run_score_model,
    service_config,
)
from service.api.diagnostics import REPORT_FORMATS, diagnosis_response
from service.errors import ApiError
from service.repository import Entry

blueprint = Blueprint("models", __name__, url_prefix="/v1/models")
SAMPLE_FORMATS = ("application/json", "application/x-npy")
SCORE_FIELDS = ("steps", "sampler", "churn")


def describe(entry: Entry) -> dict:
    """Name, kind, readiness, the provider in use, each version's precision and the card
    (None when unreadable)."""
    return {
        "name": entry.name,
        "kind": entry.kind,
        "ready": entry.ready,
        "error": entry.error,
        "provider": entry.provider,
        "versions": sorted(entry.sessions),
        "precision": {
            str(v): "fp16" if v in entry.half else "fp32" for v in sorted(entry.sessions)
        },
        "card": entry.card,
    }


@blueprint.get("")
def list_models() -> dict:
    entries = [e for e in repository().entries.values() if e.kind in SERVABLE_KINDS or not e.card]
    return {"models": [describe(entry) for entry in entries]}


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
    version: int
    n: int
    seed: int
    steps: int | None = None
    sampler: str | None = None
    churn: float = 0.0

    def echo(self) -> dict:
        """What the response repeats of the request (sampler settings for score models)."""
        echoed = {"model": self.entry.name, "version": self.version, "seed": self.seed}
        if self.entry.kind == "score":
            nfe = network_evaluations(self.steps, self.sampler)
            echoed |= {"steps": self.steps, "sampler": self.sampler, "network_evaluations": nfe}
            echoed |= {"churn": self.churn} if self.churn else {}
        return echoed


def sample_request(name: str) -> SampleRequest:
    """The validated JSON body {"n", "seed", "version"} (+ "steps", "sampler", "churn" for
    score models, which gan models refuse with 400 rather than silently ignore)."""
    config = service_config()
    entry = ready_entry(name, *SERVABLE_KINDS)
    body = json_body(("n", "seed", "version", *SCORE_FIELDS))
    n = int_field(body, "n", config.default_samples, 1, config.max_samples)
    seed = int_field(body, "seed", None, 0, MAX_SEED)
    seed = secrets.randbits(63) if seed is None else seed  # drawn only when none was sent
    version = int_field(body, "version", entry.latest_version(), 1, 2**31)
    if version not in entry.sessions:
        raise ApiError(
            404,
            f"{name} has no version {version} (versions: {sorted(entry.sessions)})",
            "unknown-version",
        )
    if entry.kind != "score":
        given = [field for field in SCORE_FIELDS if body.get(field) is not None]
        if given:
            raise ApiError(
                400,
                f"{', '.join(repr(f) for f in given)}: for score models only; {name} is a "
                f"{entry.kind}, drawn in one pass",
                "invalid-field",
            )
        return SampleRequest(entry, version, n, seed)
    defaults = entry.card["sampler"]
    steps = int_field(body, "steps", defaults["steps"], 1, config.max_steps)
    sampler = choice_field(body, "sampler", defaults["name"], SAMPLERS)
    churn = number_field(body, "churn", 0.0, 0.0, MAX_CHURN)
    return SampleRequest(entry, version, n, seed, steps, sampler, churn)


def draw(request: SampleRequest) -> np.ndarray:
    """The samples: G(z) with z = gaussian_latents(n, latent_dim, seed) for a gan; the
    sampler's integration from seeded noise (lab.sampling.score_samples) for a score model."""
    entry, version, n, seed = request.entry, request.version, request.n, request.seed
    if entry.kind == "score":
        return run_score_model(
            entry, version, n, seed, request.steps, request.sampler, request.churn
        )
    return run_generator(entry, version, gaussian_latents(n, entry.card["latent_dim"], seed))


@blueprint.post("/<name>/samples")
def samples(name: str) -> Response:
    """Body {"n", "seed", "version"} (+ "steps", "sampler", "churn" for score models): n
    samples, a function of the body (the seed fixes all noise)."""
    request = sample_request(name)
    media_type = negotiate(SAMPLE_FORMATS)
    batch = draw(request)
    echoed = request.echo()
    headers = {"X-Seed": str(request.seed), "X-Model-Version": str(request.version)}
    if "steps" in echoed:
        headers |= {"X-Steps": str(echoed["steps"]), "X-Sampler": echoed["sampler"]}
    if media_type == "application/x-npy":
        return Response(npy_bytes(batch), mimetype=media_type, headers=headers)
    response = jsonify(**echoed, shape=list(batch.shape), samples=batch.tolist())
    response.headers.update(headers)
    return response


@blueprint.post("/<name>/diagnose")
def diagnose_model(name: str) -> Response:
    """The samples body: generate n samples and diagnose them against the model's reference,
    in one call (the report gains the echoed request: model, version, seed and, for score
    models, steps, sampler, network_evaluations)."""
    request = sample_request(name)
    limit = service_config().max_upload_samples
    if request.n > limit:
        raise ApiError(
            400, f"'n' must be at most {limit} to diagnose (MAX_UPLOAD_SAMPLES)", "invalid-field"
        )
    media_type = negotiate(REPORT_FORMATS)
    resolved = resolve_reference(request.entry.card["reference"])
    batch = draw(request)
    return diagnosis_response(batch, resolved, media_type, request.echo())


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
