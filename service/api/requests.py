"""What the routes read from a request and from the app it reaches: the app's loaded state
(repository, settings, uploaded references), a JSON body and its fields, the media type to answer
with, multipart uploads parsed within the limits, and the named model or reference (404 when
unknown, 503 when not ready).
"""

import json
from dataclasses import dataclass

import numpy as np
from flask import current_app, request
from werkzeug.datastructures import FileStorage

from lab.cards import classifier_spec
from lab.classify import classify, embed_images
from lab.diagnostics.clusters import ClusterModes
from lab.diagnostics.embedding import fits, mismatch
from lab.diagnostics.report import reference_sample_shape
from service.config import ServiceConfig
from service.errors import ApiError
from service.jobs import JobStore
from service.references import ReferenceStore, StoredReference
from service.repository import Entry, Repository, Version
from service.uploads import ShapeCheck, UploadLimits, parse_upload

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


def job_store() -> JobStore:
    return current_app.extensions["jobs"]


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


def read_batch(
    upload: FileStorage, reference: "Reference | None" = None, check: ShapeCheck | None = None
) -> tuple[np.ndarray, str]:
    """(the uploaded batch as float64 [N, ...] parsed within the limits, its format: "npy",
    "npz", "csv", "json", "png" or "zip"); a .npz holding several arrays gives the one the
    `key` form field (or query parameter) names. With a reference (or another `check` of the
    shape), samples that do not fit it are a 422 saying what was sent and what it takes, before
    any size limit is checked."""
    data = upload.read()
    upload.close()  # large parts are spooled to a temporary file: release it now
    key = form_value("key")
    check = fits_reference(reference) if reference is not None else check
    return parse_upload(data, upload.filename, upload.mimetype, upload_limits(), key, check)


def fits_reference(reference: "Reference") -> ShapeCheck:
    """A check of a batch's shape [N, ...] against the samples the reference takes."""
    sample_shape = reference_sample_shape(reference.spec)

    def check(shape: tuple[int, ...]) -> None:
        if sample_shape is not None and shape[:1] != (0,) and not fits(shape, sample_shape):
            detail = mismatch(shape, sample_shape, f"reference {reference.name!r}")
            raise ApiError(422, detail, "unusable-samples")

    return check


@dataclass(frozen=True)
class Reference:
    """What a diagnosis compares against: the card's `reference` object (a classifier
    reference's with its classifier's tensors, lab.cards.classifier_spec; a features reference
    naming an embedding model's with that model's input, output and value_range), the
    real-sample features (None for mixtures, which draw their own), the session of the
    classifier or the embedding model that embeds a batch for it, and for uploaded features
    references their discovered modes."""

    name: str
    spec: dict
    features: np.ndarray | None = None
    classifier: object | None = None  # onnxruntime.InferenceSession
    embedder: object | None = None  # onnxruntime.InferenceSession
    modes: ClusterModes | None = None  # discovered modes of an uploaded features reference
    exemplars: np.ndarray | None = None  # their exemplars [K, E, *sample_shape], for figures

    def classify(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [N, G, classes], features [N, G * E]) of each sample's channel
        groups, by the classifier (classifier references only)."""
        return classify(self.classifier, self.spec, batch)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Features float64 [N, D] of images [N, C, H, W] by the embedding model (features
        references naming one only)."""
        return embed_images(self.embedder, self.spec, batch)


def resolve_reference(name: str) -> Reference:
    """A built-in or uploaded reference by name: 404 when unknown, 503 when it, or the model it
    names, is not ready."""
    stored = reference_store().get(name)
    if stored is not None:
        return stored_reference(name, stored)
    entry = ready_entry(name, "reference")
    return Reference(name, entry.spec or entry.card["reference"], entry.features, entry.classifier)


def stored_reference(name: str, stored: StoredReference) -> Reference:
    """An uploaded reference with the model that embedded it at upload: a classifier (older
    uploads name the built-in reference whose classifier they used), an embedding model, or
    none ("raw", "pixels"); a features reference with its discovered modes, if any."""
    spec, features = stored.card["reference"], stored.features
    if spec.get("type") == "classifier":
        kinds = ("classifier", "reference")
        model = named_model(name, spec["classifier"], spec.get("classifier_version"), kinds)
        if model.kind == "reference":
            return Reference(name, {**model.spec, **spec}, features, model.classifier)
        version = model.version(spec.get("classifier_version"))
        spec = classifier_spec(spec, model.card)
        return Reference(name, spec, features, version.session)
    if spec.get("embedding") == "model":
        number = spec.get("embedding_version")
        model = named_model(name, spec["embedding_model"], number, ("embedding",))
        tensors = {key: model.card[key] for key in ("input", "output", "value_range")}
        session = model.version(spec.get("embedding_version")).session
        spec = {**spec, **tensors}
        return Reference(name, spec, features, None, session, stored.modes, stored.exemplars)
    return Reference(name, spec, features, None, None, stored.modes, stored.exemplars)


def named_model(reference: str, name: str, number: int | None, kinds: tuple[str, ...]) -> Entry:
    """The ready repository entry of one of `kinds` (with version `number`, when given) that
    the reference `reference` names; 503 saying why when there is none."""
    entry = repository().get(name)
    why = None
    if entry is None or entry.kind not in kinds:
        why = f"{name!r} is not in the repository" + (f" as a {kinds[0]}" if entry else "")
    elif not entry.ready:
        why = f"{name!r} is not ready: {entry.error}"
    elif number is not None and entry.kind != "reference" and number not in entry.versions:
        why = f"{name!r} has no version {number}"
    if why is not None:
        raise ApiError(503, f"reference {reference!r} is not ready: {why}", "not-ready")
    return entry


def model_version(name: str, kind: str) -> tuple[Entry, Version]:
    """The named ready model of `kind` (classifier, embedding) and its newest version: 404
    naming the known ones when unknown, 503 when not ready."""
    entry = ready_entry(name, kind)
    return entry, entry.version()


def to_value_range(batch: np.ndarray, upload_format: str, spec: dict) -> np.ndarray:
    """PNG pixels (parsed into [0, 1]) mapped to a classifier's value_range; others as given."""
    if upload_format not in IMAGE_FORMATS or "value_range" not in spec:
        return batch
    low, high = spec["value_range"]
    return low + (high - low) * batch


def ready_entry(name: str, *kinds: str) -> Entry:
    """The named entry of one of `kinds`: 404 when unknown, 503 when it failed to load."""
    entry = repository().get(name)
    if entry is None or (entry.kind is not None and entry.kind not in kinds):
        noun = kinds[0] if len(kinds) == 1 else "model"  # reference, classifier, embedding
        known = ", ".join(e.name for e in repository().of_kind(*kinds)) or "none"
        group = "reference" if noun == "reference" else "model"
        raise ApiError(404, f"no {noun} named {name!r} (known: {known})", f"unknown-{group}")
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
    except RecursionError:  # Python's decoder recurses once per nesting level
        raise ApiError(
            400, "request body is JSON nested too deeply: send one flat object", "malformed-json"
        ) from None
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
