"""Open Inference Protocol (KServe v2) REST codec, with Triton's binary tensor extension.

Pure functions: bytes + headers in, numpy tensors out, and back. A request body is a JSON
header, optionally followed by raw tensor bytes; `Inference-Header-Content-Length` gives the
JSON header's length, and each binary input says its size in `parameters.binary_data_size`
(https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md).
tritonclient sends no Content-Type, so the raw body is parsed whatever the header says.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from service.errors import ApiError
from service.floats import float32_decimals

HEADER_LENGTH = "Inference-Header-Content-Length"
DATATYPES = {  # KServe v2 tensor datatype -> numpy dtype (BYTES is not served)
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items()}
MAX_AXIS = 2**31 - 1
MAX_TENSOR_BYTES = 1 << 30  # far above any request body the service accepts


@dataclass
class InferRequest:
    """A decoded infer request: its id, parameters, input tensors and the outputs asked for."""

    id: str | None
    parameters: dict
    inputs: dict[str, np.ndarray]
    binary_outputs: dict[str, bool] = field(default_factory=dict)  # name -> send as binary
    binary_by_default: bool = False


def bad(detail: str) -> ApiError:
    return ApiError(400, detail, "invalid-infer-request")


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """(JSON header, the binary bytes after it) of an infer request body."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise bad(f"{HEADER_LENGTH} {header_length!r} is not a length within the body")
        json_part, binary = body[: int(header_length)], body[int(header_length) :]
    try:
        header = json.loads(json_part)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise bad(f"infer request header is not valid JSON: {error}") from None
    except RecursionError:  # Python's decoder recurses once per nesting level
        raise bad("infer request header is JSON nested too deeply") from None
    if not isinstance(header, dict):
        raise bad("infer request must be a JSON object")
    return header, binary


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer request (JSON or JSON + binary tensors)."""
    header, binary = split_body(body, header_length)
    parameters = header.get("parameters") or {}
    inputs_spec = header.get("inputs")
    if not isinstance(parameters, dict) or not isinstance(inputs_spec, list) or not inputs_spec:
        raise bad("infer request needs 'inputs', a non-empty list (and 'parameters' an object)")
    inputs, offset = {}, 0
    for spec in inputs_spec:
        name, array, offset = decode_input(spec, binary, offset)
        inputs[name] = array
    if offset != len(binary):
        raise bad(f"{len(binary) - offset} bytes of binary data follow the declared tensors")
    outputs = header.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict)
        and isinstance(o.get("name"), str)
        and isinstance(o.get("parameters") or {}, dict)
        for o in outputs
    ):
        raise bad(
            "'outputs' must be a list of objects with a string 'name' (and object 'parameters')"
        )
    binary_outputs = {
        o["name"]: bool((o.get("parameters") or {}).get("binary_data", False)) for o in outputs
    }
    request_id = header.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        parameters=parameters,
        inputs=inputs,
        binary_outputs=binary_outputs,
        binary_by_default=bool(parameters.get("binary_data_output", False)),
    )


def decode_input(spec: object, binary: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    """One input tensor: (name, array, offset just past its binary bytes)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise bad("each input needs a 'name'")
    name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise bad(
            f"input {name!r}: datatype {str(datatype)[:20]!r} not supported "
            f"(one of {', '.join(DATATYPES)})"
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_AXIS for d in shape
    ):
        raise bad(f"input {name!r}: 'shape' must be a list of integers in 0..{MAX_AXIS}")
    dtype, count = DATATYPES[datatype], math.prod(shape)
    if count * dtype.itemsize > MAX_TENSOR_BYTES:
        raise ApiError(
            413,
            f"input {name!r}: {count} elements exceed the limit of "
            f"{MAX_TENSOR_BYTES} bytes per tensor",
            "too-large",
        )
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise bad(f"input {name!r}: 'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool):
            raise bad(f"input {name!r}: binary_data_size must be an integer")
        if size != count * dtype.itemsize or offset + size > len(binary):
            raise bad(
                f"input {name!r}: binary_data_size {size} does not match shape {shape} "
                f"{datatype} or the bytes sent"
            )
        array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset).reshape(shape)
        return name, array, offset + size
    array = json_values(spec.get("data"), dtype)
    if array is None:
        raise bad(f"input {name!r}: 'data' is not a list of {datatype} numbers")
    if array.size != count:
        raise bad(f"input {name!r}: {array.size} values for shape {shape}")
    return name, array.reshape(shape), offset


def json_values(data: object, dtype: np.dtype) -> np.ndarray | None:
    """JSON `data` as an array of `dtype`, or None when they are not its values: an integer or
    bool tensor takes JSON integers or booleans within its range only (numpy would cut 0.5 to
    0, and integers past int64 arrive as Python objects)."""
    try:
        given = np.asarray(data)
        if dtype.kind in "iub" and given.size:
            if given.dtype.kind not in "iub":
                return None
            if dtype.kind in "iu":
                limits = np.iinfo(dtype)
                if given.min() < limits.min or given.max() > limits.max:
                    return None
        return given.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        return None


def encode_response(
    model: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of an infer response; binary outputs follow the JSON header."""
    header: dict = {"model_name": model, "model_version": version, "outputs": []}
    if request.id is not None:
        header["id"] = request.id
    blobs = []
    for name, array in outputs.items():
        tensor = {
            "name": name,
            "datatype": NUMPY_TO_DATATYPE[array.dtype],
            "shape": list(array.shape),
        }
        if request.binary_outputs.get(name, request.binary_by_default):
            blob = np.ascontiguousarray(array).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            flat = array.reshape(-1)
            tensor["data"] = (float32_decimals(flat) if flat.dtype == np.float32 else flat).tolist()
        header["outputs"].append(tensor)
    encoded = json.dumps(header).encode()
    if not blobs:
        return encoded, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(encoded))}
    return b"".join([encoded, *blobs]), headers
