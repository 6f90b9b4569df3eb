"""References: what diagnostics compare against. Built-in ones come from the model repository;
more are built from uploaded batches of real samples."""

import numpy as np
from flask import Blueprint, Response, jsonify

from lab.cards import classifier_spec
from lab.classify import embed_images
from lab.diagnostics.classifier import classifier_sample_shape
from lab.diagnostics.clusters import CONFIG as CLUSTERS
from lab.diagnostics.embedding import fits, image_layout, mismatch, shape_layout, to_channels_first
from lab.diagnostics.features import stored_passes
from service.api.inference import guard
from service.api.requests import (
    Reference,
    form_value,
    read_batch,
    ready_entry,
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
    DiscoveredModes,
    classified_spec,
    embedded_spec,
    features_spec,
    passes_worth_storing,
    with_modes,
)
from service.repository import Entry
from service.uploads import ShapeCheck

blueprint = Blueprint("references", __name__, url_prefix="/v1/references")
MAX_STACKED_MODES = 100_000  # modes a classifier stacked over channels may make (the weights)


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
    """multipart/form-data: `file` (a batch of real samples), `name`, optionally `classifier`
    or `embedding` (a model of the repository that embeds the batch) and `modes` ("auto",
    "none" or K: how a features reference's modes are discovered) -> 201 + the card."""
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
    model = named_model_field()
    batch, upload_format = read_batch(upload, check=fits_model(model) if model else None)
    limit = service_config().max_reference_samples
    if len(batch) > limit:
        raise ApiError(
            413,
            f"number of samples ({len(batch)}) exceeds the limit of {limit} "
            "(MAX_REFERENCE_SAMPLES)",
            "too-large",
        )
    spec, features = reference_features(batch, upload_format, upload.filename, model)
    discovered = discovered_modes(spec, features, requested, batch)
    passes = None  # computed once here, not in each report against it
    if passes_worth_storing(features):
        passes = guard().run(stored_passes, features)
    card = reference_store().create(name, spec, features, discovered, passes)
    response = jsonify(card)
    response.status_code = 201
    response.headers["Location"] = f"/v1/references/{name}"
    return response


def named_model_field() -> Entry | None:
    """The classifier or embedding model the `classifier` or `embedding` field names (404 when
    unknown, 503 when not ready), None when neither is sent; 400 for both."""
    classifier, embedding = form_value("classifier"), form_value("embedding")
    if classifier and embedding:
        raise ApiError(
            400,
            "send either 'classifier' (modes and features from a classifier) or 'embedding' "
            "(features from an embedding model), not both",
            "invalid-field",
        )
    if classifier or embedding:
        return ready_entry(classifier or embedding, "classifier" if classifier else "embedding")
    return None


def reference_features(
    batch: np.ndarray, upload_format: str, source: str | None, model: Entry | None
) -> tuple[dict, np.ndarray]:
    """The stored reference's `reference` object and features [N, D] of a batch: embedded by
    the named model, else by a built-in classifier whose input fits (matching_classifier), else
    as raw vectors or pixels."""
    if model is not None and model.kind == "embedding":
        version = model.version()
        batch = to_value_range(batch, upload_format, model.card)
        embedded = embed_images(version.session, model.card, batch)
        return embedded_spec(source, model.name, version.number, model.card, embedded)
    if model is not None:
        classifier = stacked_classifier(model, image_layout(batch)[0])  # fits_model passed
    else:
        classifier = matching_classifier(batch)
    if classifier is None:
        return features_spec(batch, source)
    batch = to_value_range(batch, upload_format, classifier.spec)
    probabilities, embeddings = classifier.classify(batch)
    return classified_spec(len(batch), source, classifier.spec, probabilities, embeddings)


def stacked_classifier(model: Entry, channels: int) -> Reference:
    """A classifier model run over samples of `channels` channels: channels / C_in groups
    stacked in base n_classes (lab.cards.classifier_spec), uniform weights; 422 when that
    makes more than MAX_STACKED_MODES modes."""
    groups = channels // model.card["input"]["shape"][1]
    n_classes = model.card["n_classes"]
    if n_classes**groups > MAX_STACKED_MODES:
        raise ApiError(
            422,
            f"{groups} stacked images of {n_classes} classes make {n_classes}**{groups} modes, "
            f"more than the {MAX_STACKED_MODES} a reference may have; send fewer channels",
            "unusable-samples",
        )
    version = model.version()
    reference = {
        "type": "classifier",
        "classifier": model.name,
        "classifier_version": version.number,
        "channels": groups,
        "n_modes": n_classes**groups,
        "weights": [1 / n_classes**groups] * n_classes**groups,
    }
    return Reference(model.name, classifier_spec(reference, model.card), None, version.session)


def fits_model(model: Entry) -> ShapeCheck:
    """A check of a batch's shape [N, ...] against a model's declared input [-1, C_in, H, W]:
    images of C_in channels, or for a classifier a stack of them along the channels; 422 saying
    what was sent and what the model takes."""
    _, channels_in, height, width = model.card["input"]["shape"]

    def check(shape: tuple[int, ...]) -> None:
        if shape[:1] == (0,):
            return
        channels = shape_layout(shape)[0] if len(shape) in (3, 4) else 0
        groups = max(channels // channels_in, 1) if model.kind == "classifier" else 1
        if not fits(shape, (groups * channels_in, height, width)):
            detail = mismatch(shape, (channels_in, height, width), f"{model.kind} {model.name!r}")
            stack = ", or a stack of them along the channels" * (model.kind == "classifier")
            raise ApiError(422, detail + stack, "unusable-samples")

    return check


def modes_field(value: str | None) -> int | str:
    """The `modes` form field: "auto" (the default), "none", or an integer K in
    2..CLUSTERS.max_modes; 400 naming the choices otherwise."""
    value = (value or MODES_AUTO).strip().lower()
    if value in (MODES_AUTO, MODES_NONE):
        return value
    if value.isascii() and value.isdigit() and 2 <= int(value) <= CLUSTERS.max_modes:
        return int(value)
    raise ApiError(
        400,
        f"'modes' must be 'auto', 'none' or an integer from 2 to {CLUSTERS.max_modes}, "
        f"got {value[:40]!r}",
        "invalid-field",
    )


def discovered_modes(
    spec: dict, features: np.ndarray, requested: int | str, batch: np.ndarray
) -> DiscoveredModes | None:
    """The modes of a features reference, discovered under the guard (service.references
    with_modes; exemplars in sample space); None for a classifier reference, whose classes are
    its modes (400 when `modes` asks otherwise)."""
    if spec["type"] != "features":
        if requested != MODES_AUTO:
            raise ApiError(
                400,
                f"these images are embedded by the classifier {spec['classifier']!r}, whose "
                "classes are the modes: leave out 'modes' (it applies to references of vectors, "
                "pixels or an embedding model's features)",
                "invalid-field",
            )
        return None
    shape = tuple(spec["sample_shape"])
    samples = to_channels_first(batch, shape) if len(shape) == 3 else None
    return guard().run(with_modes, spec, features, requested, samples)


def matching_classifier(batch: np.ndarray) -> Reference | None:
    """The classifier of a built-in classifier reference whose samples these images [N, C, H,
    W] (or channels last) are, stacked as that reference stacks them, to embed an uploaded
    image reference; None for vectors or when none fits."""
    if batch.ndim < 3:
        return None
    layout = image_layout(batch)
    for entry in repository().of_kind("reference"):
        if entry.ready and entry.spec is not None and classifier_sample_shape(entry.spec) == layout:
            model = repository().get(entry.spec["classifier"])
            return stacked_classifier(model, layout[0])
    return None


@blueprint.delete("/<name>")
def delete_reference(name: str) -> Response:
    if repository().get(name, "reference") is not None:
        raise ApiError(409, f"{name!r} is built in (read-only)", "conflict")
    if not reference_store().delete(name):
        raise ApiError(404, f"no uploaded reference named {name!r}", "unknown-reference")
    return Response(status=204)
