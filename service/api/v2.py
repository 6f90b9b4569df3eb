"""Open Inference Protocol (KServe v2 / Triton REST) under /v2, for standard clients.

GAN models take `z` [batch, latent_dim] FP32 and return `samples`; score models expose their
raw denoiser: `x` [batch, *sample_shape] and `sigma` [batch] FP32 in, `denoised` out (the
sampler loop is /v1's). Inputs and outputs may be JSON or binary (Triton's binary tensor
extension); the request `id` is echoed.
"""

from importlib import metadata

import numpy as np
from flask import Blueprint, Response, request

from lab.cards import SERVABLE_KINDS, tensor_inputs
from service import kserve
from service.api.inference import run_inputs
from service.api.requests import ready_entry, repository, service_config
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
    return {"name": SERVER_NAME, "version": server_version(), "extensions": ["binary_tensor_data"]}


@blueprint.get("/health/live")
def live() -> dict:
    return {"live": True}


@blueprint.get("/health/ready")
def ready() -> tuple[dict, int]:
    """200 {"ready": true} when every model loaded, else 503 {"ready": false} (/readyz names
    the models that did not)."""
    is_ready = not repository().not_ready()
    return {"ready": is_ready}, 200 if is_ready else 503


def model_version(name: str, version: str | None) -> tuple[Entry, Version]:
    """The ready model entry and the version (the latest when the path names none)."""
    entry = ready_entry(name, *SERVABLE_KINDS)
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
    """The model's inputs checked against the card: FP32 [batch, *card shape], one batch for
    all, within MAX_SAMPLES rows; a score model's sigma finite and > 0."""
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
        if array.dtype != np.float32 or list(array.shape[1:]) != expected or array.ndim < 1:
            raise ApiError(
                400,
                f"input {spec['name']!r} must be FP32 of shape "
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
    return inputs
