"""Open Inference Protocol (KServe v2 / Triton REST) under /v2, for standard clients.

GAN models take `z` [batch, latent_dim] FP32 and return `samples`; score models expose their
raw denoiser: `x` [batch, *sample_shape] and `sigma` [batch] FP32 in, `denoised` out (the
sampler loop is /v1's). Ensembles have no tensors of their own and are served under /v1 only.
Inputs and outputs may be JSON or binary (Triton's binary tensor
extension); the request `id` is echoed.
"""

from importlib import metadata
from typing import NoReturn

import numpy as np
from flask import Blueprint, Response, request

from lab.cards import ENSEMBLE, GENERATOR_KINDS, tensor_inputs
from lab.conditioning import check_labels, conditional_input
from service import kserve
from service.api.inference import run_inputs
from service.api.requests import json_body, ready_entry, repository, service_config
from service.errors import ApiError
from service.repository import Entry, Version

blueprint = Blueprint("v2", __name__, url_prefix="/v2")
SERVER_NAME = "collapse-lab"


def server_version() -> str:
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@blueprint.get("")
def server_metadata() -> dict:
    extensions = ["binary_tensor_data", "model_repository"]
    return {"name": SERVER_NAME, "version": server_version(), "extensions": extensions}


@blueprint.get("/health/live")
def live() -> dict:
    return {"live": True}


@blueprint.get("/health/ready")
def ready() -> tuple[dict, int]:
    """200 {"ready": true} when every model loaded, else 503 {"ready": false} (/readyz names
    the models that did not)."""
    is_ready = not repository().not_ready()
    return {"ready": is_ready}, 200 if is_ready else 503


@blueprint.post("/repository/index")
def repository_index() -> list[dict]:
    """Triton's model repository index: one {"name", "version", "state", "reason"} per served
    model version (a model that failed to load before any version was read: no "version");
    body {"ready": true} keeps the READY ones only."""
    body = json_body(("ready",))
    ready_only = body.get("ready", False)
    if not isinstance(ready_only, bool):
        raise ApiError(400, "'ready' must be true or false", "invalid-field")
    index = []
    for entry in repository().entries.values():
        if entry.card and entry.kind not in GENERATOR_KINDS:
            continue  # references are data, not models; ensembles have no tensors
        state = {"state": "READY" if entry.ready else "UNAVAILABLE", "reason": entry.error or ""}
        if ready_only and not entry.ready:
            continue
        versions = [{"version": str(n)} for n in sorted(entry.versions)] or [{}]
        index += [{"name": entry.name, **version, **state} for version in versions]
    return index


@blueprint.post("/repository/models/<name>/load")
@blueprint.post("/repository/models/<name>/unload")
def load_or_unload(name: str) -> NoReturn:
    """The repository is read at start and fixed: 405 problem saying so."""
    action = request.path.rsplit("/", 1)[1]
    raise ApiError(
        405,
        f"cannot {action} {name!r}: the model repository (MODEL_REPOSITORY) is read once at "
        "start and fixed; change it and restart the service",
        "read-only-repository",
        headers={"Allow": ""},
    )


def model_version(name: str, version: str | None) -> tuple[Entry, Version]:
    """The ready model entry and the version (the latest when the path names none); an
    ensemble is a 404 naming its /v1 route."""
    found = repository().get(name)
    if found is not None and found.kind == ENSEMBLE:
        raise ApiError(
            404,
            f"{name!r} is an ensemble: it has no tensors of its own to infer on; draw its samples "
            f"with POST /v1/models/{name}/samples",
            "unknown-model",
        )
    entry = ready_entry(name, *GENERATOR_KINDS)
    if version is None:
        return entry, entry.versions[entry.latest_version()]
    if not version.isdigit() or int(version) not in entry.versions:
        raise ApiError(
            404,
            f"{name} has no version {version!r} (versions: {sorted(entry.versions)})",
            "unknown-version",
        )
    return entry, entry.versions[int(version)]


def tensor_metadata(spec: dict) -> dict:
    return {
        "name": spec["name"],
        "datatype": kserve.NUMPY_TO_DATATYPE[np.dtype(spec["dtype"])],
        "shape": spec["shape"],
    }


@blueprint.get("/models/<name>")
@blueprint.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> dict:
    entry, _ = model_version(name, version)
    return {
        "name": name,
        "versions": [str(v) for v in sorted(entry.versions)],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(spec) for spec in tensor_inputs(entry.card)],
        "outputs": [tensor_metadata(entry.card["output"])],
    }


@blueprint.get("/models/<name>/ready")
@blueprint.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> dict:
    model_version(name, version)
    return {"name": name, "ready": True}


@blueprint.post("/models/<name>/infer")
@blueprint.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    entry, chosen = model_version(name, version)
    inference = kserve.decode_request(request.get_data(), request.headers.get(kserve.HEADER_LENGTH))
    inputs = model_inputs(entry, inference.inputs)
    output_name = entry.card["output"]["name"]
    unknown = sorted(set(inference.binary_outputs) - {output_name})
    if unknown:
        raise ApiError(
            400,
            f"unknown output(s) {', '.join(unknown)}; {name} has {output_name!r}",
            "invalid-infer-request",
        )
    outputs = run_inputs(entry, chosen, inputs)
    body, headers = kserve.encode_response(
        name, str(chosen.number), inference, {output_name: outputs}
    )
    return Response(body, headers=headers)


def model_inputs(entry: Entry, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's inputs checked against the card: its dtype (FP32; a conditional model's
    labels INT64) and [batch, *card shape], one batch for all, within MAX_SAMPLES rows; a score
    model's sigma finite and > 0; labels within 0..classes-1."""
    specs = tensor_inputs(entry.card)
    names = [spec["name"] for spec in specs]
    if set(inputs) != set(names):
        raise ApiError(
            400,
            f"{entry.name} takes the input(s) {names}, got {sorted(inputs)}",
            "invalid-infer-request",
        )
    for spec in specs:
        array, expected = inputs[spec["name"]], list(spec["shape"][1:])
        dtype = np.dtype(spec["dtype"])
        if array.dtype != dtype or list(array.shape[1:]) != expected or array.ndim < 1:
            raise ApiError(
                400,
                f"input {spec['name']!r} must be {kserve.NUMPY_TO_DATATYPE[dtype]} of shape "
                f"[{', '.join(['batch', *map(str, expected)])}], got "
                f"{kserve.NUMPY_TO_DATATYPE[array.dtype]} {list(array.shape)}",
                "invalid-infer-request",
            )
    rows = {len(inputs[name]) for name in names}
    limit = service_config().max_samples
    if len(rows) != 1 or not 1 <= min(rows) <= limit:
        raise ApiError(
            400,
            f"inputs need one batch size within 1..{limit} (MAX_SAMPLES), got {sorted(rows)}",
            "invalid-infer-request",
        )
    if entry.kind == "score" and not np.all(np.isfinite(sigma := inputs["sigma"]) & (sigma > 0)):
        raise ApiError(400, "input 'sigma' must be finite and > 0", "invalid-infer-request")
    label_input = conditional_input(entry.card)
    if label_input is not None:
        try:
            check_labels(inputs[label_input["name"]], entry.card["conditional"]["classes"])
        except ValueError as error:
            raise ApiError(
                400, f"input {label_input['name']!r}: {error}", "invalid-infer-request"
            ) from None
    return inputs
