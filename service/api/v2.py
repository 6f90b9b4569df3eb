"""Open Inference Protocol (KServe v2 / Triton REST) under /v2, for standard clients.

GAN models take `z` [batch, latent_dim] FP32 and return `samples`. Inputs and outputs may be
JSON or binary (Triton's binary tensor extension); the request `id` is echoed.
"""

from importlib import metadata

import numpy as np
from flask import Blueprint, Response, request

from service import kserve
from service.api.common import ready_entry, repository, run_generator, service_config
from service.errors import ApiError
from service.repository import Entry

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
def ready() -> Response:
    is_ready = not repository().not_ready()
    return Response(status=200 if is_ready else 503)


def model_version(name: str, version: str | None) -> tuple[Entry, int]:
    """The ready GAN entry and the version (the latest when the path names none)."""
    entry = ready_entry(name, "gan")
    if version is None:
        return entry, entry.latest_version()
    if not version.isdigit() or int(version) not in entry.sessions:
        raise ApiError(
            404,
            f"{name} has no version {version!r} (versions: {sorted(entry.sessions)})",
            "unknown-version",
        )
    return entry, int(version)


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
        "versions": [str(v) for v in sorted(entry.sessions)],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(entry.card["input"])],
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
    z = latent_input(entry, inference.inputs)
    output_name = entry.card["output"]["name"]
    unknown = sorted(set(inference.binary_outputs) - {output_name})
    if unknown:
        raise ApiError(
            400,
            f"unknown output(s) {', '.join(unknown)}; {name} has {output_name!r}",
            "invalid-infer-request",
        )
    samples = run_generator(entry, chosen, z)
    body, headers = kserve.encode_response(name, str(chosen), inference, {output_name: samples})
    return Response(body, headers=headers)


def latent_input(entry: Entry, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The model's one input, checked against the card: FP32 [batch, latent_dim]."""
    spec = entry.card["input"]
    if set(inputs) != {spec["name"]}:
        raise ApiError(
            400,
            f"{entry.name} takes exactly one input {spec['name']!r}, got {sorted(inputs)}",
            "invalid-infer-request",
        )
    array = inputs[spec["name"]]
    expected = [entry.card["latent_dim"]]
    if array.dtype != np.float32 or array.ndim != 2 or list(array.shape[1:]) != expected:
        raise ApiError(
            400,
            f"input {spec['name']!r} must be FP32 of shape [batch, "
            f"{expected[0]}], got {kserve.NUMPY_TO_DATATYPE[array.dtype]} "
            f"{list(array.shape)}",
            "invalid-infer-request",
        )
    limit = service_config().max_samples
    if not 1 <= len(array) <= limit:
        raise ApiError(
            400,
            f"batch of {len(array)} rows outside 1..{limit} (MAX_SAMPLES)",
            "invalid-infer-request",
        )
    return array
