"""References: what diagnostics compare against. Built-in ones come from the model repository;
more are built from uploaded batches of real samples."""

import numpy as np
from flask import Blueprint, Response, jsonify

from lab.diagnostics.clusters import CONFIG as CLUSTERS
from lab.diagnostics.embedding import image_layout
from service.api.inference import guard
from service.api.requests import (
    Reference,
    form_value,
    read_batch,
    reference_store,
    repository,
    require_upload,
    service_config,
    to_value_range,
)
from service.errors import ApiError
from service.references import (
    MODES_AUTO,
    MODES_NONE,
    NAME,
    classified_spec,
    features_spec,
    with_modes,
)

blueprint = Blueprint("references", __name__, url_prefix="/v1/references")


def summary(card: dict | None, name: str, source: str, error: str | None = None) -> dict:
    card = card or {}
    return {
        "name": name,
        "source": source,
        "ready": error is None,
        "error": error,
        "type": (card.get("reference") or {}).get("type"),
        "dataset": card.get("dataset"),
        "description": card.get("description"),
    }


@blueprint.get("")
def list_references() -> dict:
    built_in = [
        summary(e.card, e.name, "builtin", e.error if not e.ready else None)
        for e in repository().of_kind("reference")
    ]
    store = reference_store()
    uploaded = [
        summary(stored.card, name, "upload")
        for name in store.names()
        if (stored := store.get(name)) is not None
    ]
    return {"references": built_in + uploaded}


@blueprint.get("/<name>")
def get_reference(name: str) -> dict:
    """The whole reference card (centres, std and weights for mixtures)."""
    stored = reference_store().get(name)
    if stored is not None:
        return stored.card
    entry = repository().get(name, "reference")
    if entry is None:
        raise ApiError(404, f"no reference named {name!r}", "unknown-reference")
    if not entry.ready:
        raise ApiError(503, f"{name!r} is not ready: {entry.error}", "not-ready")
    return entry.card


@blueprint.post("")
def create_reference() -> Response:
    """multipart/form-data: `file` (a batch of real samples), `name` and optionally `modes`
    ("auto", "none" or K: how a features reference's modes are discovered) -> 201 + the card."""
    upload, fields = require_upload("name")
    requested = modes_field(form_value("modes"))
    name = fields["name"]
    if not NAME.fullmatch(name):
        raise ApiError(
            400,
            f"invalid reference name {name!r}: 1-64 of a-z 0-9 . _ -, starting "
            "with a letter or digit",
            "invalid-field",
        )
    if repository().get(name) is not None:
        raise ApiError(409, f"{name!r} is a built-in name; choose another", "conflict")
    batch, upload_format = read_batch(upload)
    limit = service_config().max_reference_samples
    if len(batch) > limit:
        raise ApiError(
            413,
            f"number of samples ({len(batch)}) exceeds the limit of {limit} "
            "(MAX_REFERENCE_SAMPLES)",
            "too-large",
        )
    classifier = matching_classifier(batch)
    discovered = None
    if classifier is None:
        spec, features = features_spec(batch, upload.filename)
        discovered = guard().run(with_modes, spec, features, requested)
    else:
        if requested != MODES_AUTO:
            raise ApiError(
                400,
                f"these images are embedded by the built-in classifier {classifier.name!r}, "
                "whose classes are the modes: leave out 'modes' (it applies to references "
                "of vectors or other images)",
                "invalid-field",
            )
        batch = to_value_range(batch, upload_format, classifier.spec)
        probabilities, embeddings = classifier.classify(batch)
        spec, features = classified_spec(
            len(batch), upload.filename, classifier.name, classifier.spec, probabilities, embeddings
        )
    card = reference_store().create(name, spec, features, discovered)
    response = jsonify(card)
    response.status_code = 201
    response.headers["Location"] = f"/v1/references/{name}"
    return response


def modes_field(value: str | None) -> int | str:
    """The `modes` form field: "auto" (the default), "none", or an integer K in
    2..CLUSTERS.max_modes; 400 naming the choices otherwise."""
    value = (value or MODES_AUTO).strip().lower()
    if value in (MODES_AUTO, MODES_NONE):
        return value
    if value.isdigit() and 2 <= int(value) <= CLUSTERS.max_modes:
        return int(value)
    raise ApiError(
        400,
        f"'modes' must be 'auto', 'none' or an integer from 2 to {CLUSTERS.max_modes}, "
        f"got {value[:40]!r}",
        "invalid-field",
    )


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
                return Reference(entry.name, spec, entry.features, entry.classifier)
    return None


@blueprint.delete("/<name>")
def delete_reference(name: str) -> Response:
    if repository().get(name, "reference") is not None:
        raise ApiError(409, f"{name!r} is built in (read-only)", "conflict")
    if not reference_store().delete(name):
        raise ApiError(404, f"no uploaded reference named {name!r}", "unknown-reference")
    return Response(status=204)
