"""Turn an uploaded batch (.npy, .csv, .json) into a float64 array [N, d], safely.

Nothing is unpickled: .npy headers are read first and object dtypes refused before any data is
read (`allow_pickle=False` as well). Sizes are checked against the limits before parsing where
the format allows it. Every failure is an ApiError: 400 malformed, 413 over a limit,
415 unsupported format.
"""

import io
import json
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from service.errors import ApiError

NPY_MAGIC = b"\x93NUMPY"
FORMATS = {  # file extension -> parser name; the Content-Type of the part is the fallback
    ".npy": "npy",
    ".csv": "csv",
    ".txt": "csv",
    ".json": "json",
}
MIME_FORMATS = {
    "application/x-npy": "npy",
    "application/octet-stream": "npy",
    "text/csv": "csv",
    "text/plain": "csv",
    "application/json": "json",
}


NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


@dataclass(frozen=True)
class UploadLimits:
    max_samples: int
    max_dim: int


def detect_format(filename: str | None, content_type: str | None, head: bytes) -> str:
    """Pick the parser by extension, then the part's Content-Type, then the .npy magic."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if head.startswith(NPY_MAGIC):
        return "npy"
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in MIME_FORMATS:
        return MIME_FORMATS[mime]
    supported = ", ".join(sorted(FORMATS))
    raise ApiError(415, f"cannot tell the format of {filename or 'the upload'!r}; "
                   f"send one of {supported} (by file name or Content-Type)", "unsupported-format")


def parse_batch(data: bytes, filename: str | None, content_type: str | None,
                limits: UploadLimits) -> np.ndarray:
    """The uploaded batch as float64 [N, d] (N rows of d values each)."""
    if not data:
        raise ApiError(400, "the uploaded file is empty", "malformed-upload")
    parser = {"npy": parse_npy, "csv": parse_csv, "json": parse_json}
    array = parser[detect_format(filename, content_type, data[:8])](data, limits)
    if array.ndim == 1:
        array = array.reshape(-1, 1) if array.size else array.reshape(0, 0)
    check_limits(array.shape, limits)
    return array


def check_limits(shape: tuple[int, ...], limits: UploadLimits) -> None:
    """413 when the batch has more rows or more values per row than the service accepts."""
    if shape and shape[0] > limits.max_samples:
        raise ApiError(413, f"{shape[0]} samples exceed the limit of {limits.max_samples} "
                       "(MAX_UPLOAD_SAMPLES)", "too-large")
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if per_row > limits.max_dim:
        raise ApiError(413, f"{per_row} values per sample exceed the limit of {limits.max_dim} "
                       "(MAX_UPLOAD_DIM)", "too-large")


def parse_npy(data: bytes, limits: UploadLimits) -> np.ndarray:
    """A .npy file with a numeric dtype; the header is checked before the data is read."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"format version {version} is not supported (use 1.0 or 2.0)")
        shape, _, dtype = read_header(stream)
    except (ValueError, SyntaxError, TypeError) as error:
        raise ApiError(400, f"not a valid .npy file: {error}", "malformed-upload") from None
    if dtype.kind not in "biuf":
        raise ApiError(400, f".npy dtype {dtype} is not numeric (object, string and structured "
                       "arrays are refused)", "malformed-upload")
    check_limits(shape, limits)
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - stream.tell() < expected:
        raise ApiError(400, f".npy file is truncated: header says {shape} {dtype}",
                       "malformed-upload")
    stream.seek(0)
    return np.load(stream, allow_pickle=False).astype(np.float64)


def parse_csv(data: bytes, limits: UploadLimits) -> np.ndarray:
    """Comma-separated rows of numbers; a first line that is not numeric is taken as a header."""
    text = decode_utf8(data)
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not is_numeric_row(lines[0]):
        lines = lines[1:]
    check_limits((len(lines),), limits)
    if not lines:
        return np.zeros((0, 0))
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append([float(value) for value in line.split(",")])
        except ValueError:
            raise ApiError(400, f"CSV row {number} is not all numbers: {line[:80]!r}",
                           "malformed-upload") from None
    if len({len(row) for row in rows}) > 1:
        raise ApiError(400, "CSV rows have different numbers of columns", "malformed-upload")
    return np.asarray(rows, dtype=np.float64)


def is_numeric_row(line: str) -> bool:
    try:
        [float(value) for value in line.split(",")]
    except ValueError:
        return False
    return True


def parse_json(data: bytes, limits: UploadLimits) -> np.ndarray:
    """`[[x, y], ...]` or `{"samples": [[x, y], ...]}` (the service's own sample format)."""
    try:
        document = json.loads(decode_utf8(data))
    except json.JSONDecodeError as error:
        raise ApiError(400, f"invalid JSON: {error}", "malformed-upload") from None
    if isinstance(document, dict):
        if "samples" not in document:
            raise ApiError(400, "a JSON object upload needs a 'samples' member",
                           "malformed-upload")
        document = document["samples"]
    if not isinstance(document, list):
        raise ApiError(400, "JSON samples must be a list of rows", "malformed-upload")
    check_limits((len(document),), limits)
    try:
        array = np.asarray(document, dtype=np.float64)
    except (ValueError, TypeError):
        raise ApiError(400, "JSON samples must be a rectangular list of numbers",
                       "malformed-upload") from None
    return array


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"the upload is not UTF-8 text: {error}", "malformed-upload") from None
