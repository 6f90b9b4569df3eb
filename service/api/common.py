"""What the routes share: the loaded repository, JSON bodies, content negotiation."""

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
from flask import current_app, request
from werkzeug.datastructures import FileStorage

from lab import runtime
from lab.classify import classify
from lab.diagnostics.embedding import image_layout
from lab.samplers import Churn
from lab.sampling import (
    ScoreSpec,
    fused_score_samples,
    matching_fused,
    onnx_denoiser,
    score_samples,
    stepped_score_samples,
)
from service import metrics
from service.config import ServiceConfig
from service.errors import ApiError
from service.guard import Guard
from service.references import ReferenceStore
from service.repository import Entry, Repository
from service.uploads import UploadLimits, detect_format, parse_batch

log = logging.getLogger(__name__)
IMAGE_FORMATS = ("png", "zip")  # parsed into [0, 1]


def repository() -> Repository:
    return current_app.extensions["repository"]


def service_config() -> ServiceConfig:
    return current_app.config["SERVICE"]


def upload_limits() -> UploadLimits:
    config = service_config()
    return UploadLimits(
        config.max_upload_samples,
        config.max_upload_dim,
        config.max_image_pixels,
        config.max_zip_files,
        config.max_decompressed_bytes,
    )


def reference_store() -> ReferenceStore:
    return current_app.extensions["references"]


def require_upload(*fields: str) -> tuple[FileStorage, dict[str, str]]:
    """The multipart `file` part and the named form fields (also accepted as query parameters)."""
    if request.mimetype != "multipart/form-data":
        named = "".join(f" -F {name}=..." for name in fields)
        raise ApiError(
            415,
            f"send multipart/form-data with a 'file' part (curl -F file=@batch.npy{named} ...)",
            "unsupported-format",
        )
    upload = request.files.get("file")
    values = {name: form_value(name) for name in fields}
    absent = [
        name
        for name in ("file", *fields)
        if (upload is None if name == "file" else not values[name])
    ]
    if absent:
        raise ApiError(
            400,
            f"required: {', '.join(repr(n) for n in absent)} (multipart fields)",
            "missing-field",
        )
    return upload, values


def form_value(name: str) -> str | None:
    """A multipart form field, else the query parameter of that name, else None."""
    return request.form.get(name) or request.args.get(name) or None


def read_batch(upload: FileStorage) -> tuple[np.ndarray, str]:
    """(the uploaded batch parsed within the limits, its format); `key` picks a .npz array."""
    data = upload.read()
    upload.close()  # large parts are spooled to a temporary file: release it now
    kind = detect_format(upload.filename, upload.mimetype, data[:8]) if data else "empty"
    batch = parse_batch(data, upload.filename, upload.mimetype, upload_limits(), form_value("key"))
    return batch, kind


@dataclass(frozen=True)
class Reference:
    """What a diagnosis compares against: the card's `reference` object, the real-sample
    features (None for mixtures, which draw their own) and, for classifier references, the
    classifier session."""

    name: str
    spec: dict
    features: np.ndarray | None = None
    classifier: object | None = None  # onnxruntime.InferenceSession


def resolve_reference(name: str) -> Reference:
    """A built-in or uploaded reference by name: 404 when unknown, 503 when not ready."""
    stored = reference_store().get(name)
    if stored is not None:
        spec = stored.card["reference"]
        classifier = None
        if spec.get("type") == "classifier":  # embedded by a built-in classifier at upload
            classifier = ready_entry(spec["classifier"], "reference").sessions.get(1)
        return Reference(name, spec, stored.features, classifier)
    entry = ready_entry(name, "reference")
    return Reference(name, entry.card["reference"], entry.features, entry.sessions.get(1))


def run_classifier(reference: Reference, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C, classes], embeddings [N, C * E]) of each sample's channels."""
    return classify(reference.classifier, reference.spec, batch)


def to_value_range(batch: np.ndarray, kind: str, spec: dict) -> np.ndarray:
    """PNG pixels (parsed into [0, 1]) mapped to a classifier's value_range; others as given."""
    if kind not in IMAGE_FORMATS or "value_range" not in spec:
        return batch
    low, high = spec["value_range"]
    return low + (high - low) * batch


def matching_classifier(batch: np.ndarray) -> Reference | None:
    """A built-in classifier reference whose input fits these images [N, C, H, W] (or channels
    last), to embed an uploaded image reference; None for vectors or when none fits."""
    if batch.ndim < 3:
        return None
    layout = image_layout(batch)
    for entry in repository().of_kind("reference"):
        spec = entry.card["reference"] if entry.ready else {}
        if spec.get("type") == "classifier" and "classifier" not in spec:
            if (spec["channels"], *spec["input"]["shape"][2:]) == tuple(layout):
                return Reference(entry.name, spec, entry.features, entry.sessions.get(1))
    return None


def guard() -> Guard:
    return current_app.extensions["guard"]


def run_generator(entry: Entry, version: int, z: np.ndarray) -> np.ndarray:
    """G(z) for latents z [n, latent_dim] under the concurrency guard, with metrics."""
    return run_inputs(entry, version, {entry.card["input"]["name"]: z})


def run_inputs(entry: Entry, version: int, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """One pass of the model's session over named inputs sharing a batch [n, ...] (split at
    MAX_BATCH) under the concurrency guard, with metrics; its first output."""
    max_batch = service_config().max_batch
    rows = len(next(iter(inputs.values())))
    work = (runtime.run_rows, entry.sessions[version], inputs, max_batch)
    return guarded_inference(entry, version, rows, work, bounded=rows <= max_batch)


def run_score_model(
    entry: Entry, version: int, n: int, seed: int, steps: int, sampler: str, churn: float
) -> np.ndarray:
    """n samples of a score model under the concurrency guard and its deadline, with metrics:
    the version's fused trajectory graph when it matches the request and FUSED_SAMPLER allows
    it (use_fused), else its step graphs (STEP_GRAPHS=on), else lab.sampling.score_samples
    over the denoiser, step by step in numpy."""
    config = service_config()
    spec = ScoreSpec.from_card(entry.card)
    request = (spec, n, seed, steps, sampler, Churn(churn))
    if use_fused(entry, version, steps, sampler, churn, config.fused_sampler):
        work = (fused_score_samples, entry.fused[version], spec, n, seed, config.max_batch)
    elif config.step_graphs == "on" and version in entry.steppers:
        work = (stepped_score_samples, entry.steppers[version], *request, config.max_batch)
    else:
        denoise = onnx_denoiser(entry.sessions[version], entry.card, config.max_batch)
        work = (score_samples, denoise, *request)
    return guarded_inference(entry, version, n, work, bounded=False)


def use_fused(
    entry: Entry, version: int, steps: int, sampler: str, churn: float, setting: str
) -> bool:
    """True when FUSED_SAMPLER is "on", the version has a fused graph for exactly this sampler
    and steps, and the request has no churn."""
    if setting == "off" or version not in entry.fused:
        return False
    card_version = next(v for v in entry.card["versions"] if v["version"] == version)
    return matching_fused(card_version, sampler, steps, churn) is not None


def guarded_inference(
    entry: Entry, version: int, rows: int, work: tuple, bounded: bool
) -> np.ndarray:
    """work[0](*work[1:]) under the guard; onnxruntime failures become 503 problems; the
    inference metrics count `rows` samples."""
    started = time.perf_counter()
    try:
        samples = guard().run(*work, bounded=bounded)
    except runtime.InferenceFailed as error:
        metrics.INFERENCE_FAILURE.labels(model=entry.name, version=str(version)).inc()
        log.error("%s v%d: inference failed: %s", entry.name, version, error)
        raise ApiError(
            503,
            f"inference failed on the server ({error}); retry shortly",
            "inference-failed",
            headers={"Retry-After": "1"},
        ) from None
    except Exception:
        metrics.INFERENCE_FAILURE.labels(model=entry.name, version=str(version)).inc()
        raise
    metrics.observe_inference(entry.name, version, rows, time.perf_counter() - started)
    return samples


def ready_entry(name: str, *kinds: str) -> Entry:
    """The named entry of one of `kinds`: 404 when unknown, 503 when it failed to load."""
    entry = repository().get(name)
    if entry is None or (entry.kind is not None and entry.kind not in kinds):
        noun = "reference" if kinds == ("reference",) else "model"
        known = ", ".join(e.name for e in repository().of_kind(*kinds)) or "none"
        raise ApiError(404, f"no {noun} named {name!r} (known: {known})", f"unknown-{noun}")
    if not entry.ready:
        raise ApiError(503, f"{name!r} is not ready: {entry.error}", "not-ready")
    return entry


def json_body(allowed: tuple[str, ...]) -> dict:
    """The request body as a JSON object (an empty body is {}), whatever its Content-Type."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"request body is not valid JSON: {error}", "malformed-json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", "malformed-json")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            "unknown-field",
        )
    return body


def int_field(body: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    """body[name] as an int in [low, high] (default when absent or null); 400 otherwise."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            400, f"'{name}' must be an integer, got {json.dumps(value)[:40]}", "invalid-field"
        )
    if not low <= value <= high:
        raise ApiError(
            400, f"'{name}' must be between {low} and {high}, got {value}", "invalid-field"
        )
    return value


def number_field(body: dict, name: str, default: float, low: float, high: float) -> float:
    """body[name] as a number in [low, high] (default when absent or null); 400 otherwise."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(
            400, f"'{name}' must be a number, got {json.dumps(value)[:40]}", "invalid-field"
        )
    if not low <= value <= high:
        raise ApiError(
            400, f"'{name}' must be between {low:g} and {high:g}, got {value}", "invalid-field"
        )
    return float(value)


def choice_field(body: dict, name: str, default: str, choices: tuple[str, ...]) -> str:
    """body[name] as one of `choices` (default when absent or null); 400 otherwise."""
    value = body.get(name)
    if value is None:
        return default
    if value not in choices:
        raise ApiError(
            400,
            f"'{name}' must be one of {', '.join(choices)}, got {json.dumps(value)[:40]}",
            "invalid-field",
        )
    return value


def negotiate(offered: tuple[str, ...]) -> str:
    """The media type to answer with, from the request's Accept header (406 if none fits)."""
    if not request.accept_mimetypes:
        return offered[0]
    best = request.accept_mimetypes.best_match(offered)
    if best is None:
        raise ApiError(
            406,
            f"cannot answer with {request.headers.get('Accept')!r}; offered: {', '.join(offered)}",
            "not-acceptable",
        )
    return best
