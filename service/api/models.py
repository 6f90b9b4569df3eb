"""Generators: list, describe, draw samples."""

import io
import secrets

import numpy as np
from flask import Blueprint, Response, jsonify

from service.api.common import (
    int_field,
    json_body,
    negotiate,
    ready_entry,
    repository,
    resolve_reference,
    run_generator,
    service_config,
)
from service.api.diagnostics import REPORT_FORMATS, diagnosis_response
from service.errors import ApiError
from service.repository import SERVABLE_KINDS, Entry
from service.sampling import MAX_SEED, gaussian_latents

blueprint = Blueprint("models", __name__, url_prefix="/v1/models")
SAMPLE_FORMATS = ("application/json", "application/x-npy")


def describe(entry: Entry) -> dict:
    """Name, kind, readiness, the provider in use and the card (None when unreadable)."""
    return {
        "name": entry.name,
        "kind": entry.kind,
        "ready": entry.ready,
        "error": entry.error,
        "provider": entry.provider,
        "versions": sorted(entry.sessions),
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


def sample_request(name: str) -> tuple[Entry, int, int, int]:
    """(entry, version, n, seed) from the JSON body {"n", "seed", "version"}, validated."""
    config = service_config()
    entry = ready_entry(name, "gan")
    body = json_body(("n", "seed", "version"))
    n = int_field(body, "n", config.default_samples, 1, config.max_samples)
    seed = int_field(body, "seed", secrets.randbits(63), 0, MAX_SEED)
    version = int_field(body, "version", entry.latest_version(), 1, 2**31)
    if version not in entry.sessions:
        raise ApiError(
            404,
            f"{name} has no version {version} (versions: {sorted(entry.sessions)})",
            "unknown-version",
        )
    return entry, version, n, seed


def draw(entry: Entry, version: int, n: int, seed: int) -> np.ndarray:
    """n samples of G(z), z = gaussian_latents(n, latent_dim, seed)."""
    return run_generator(entry, version, gaussian_latents(n, entry.card["latent_dim"], seed))


@blueprint.post("/<name>/samples")
def samples(name: str) -> Response:
    """Body {"n", "seed", "version"}: n samples from G(z), z ~ N(0, I) drawn with `seed`."""
    entry, version, n, seed = sample_request(name)
    media_type = negotiate(SAMPLE_FORMATS)
    batch = draw(entry, version, n, seed)
    headers = {"X-Seed": str(seed), "X-Model-Version": str(version)}
    if media_type == "application/x-npy":
        return Response(npy_bytes(batch), mimetype=media_type, headers=headers)
    response = jsonify(
        model=name, version=version, seed=seed, shape=list(batch.shape), samples=batch.tolist()
    )
    response.headers.update(headers)
    return response


@blueprint.post("/<name>/diagnose")
def diagnose_model(name: str) -> Response:
    """Body {"n", "seed", "version"}: generate n samples and diagnose them against the
    model's reference, in one call (the report gains "model", "version" and "seed")."""
    entry, version, n, seed = sample_request(name)
    limit = service_config().max_upload_samples
    if n > limit:
        raise ApiError(
            400, f"'n' must be at most {limit} to diagnose (MAX_UPLOAD_SAMPLES)", "invalid-field"
        )
    media_type = negotiate(REPORT_FORMATS)
    reference = entry.card["reference"]
    resolved = resolve_reference(reference)
    batch = draw(entry, version, n, seed)
    extra = {"model": name, "version": version, "seed": seed}
    return diagnosis_response(batch, resolved, media_type, extra)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
