"""CSV and JSON batches: rows of numbers."""

import json

import numpy as np

from service.uploads.limits import UploadLimits, check_limits, malformed


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
            raise malformed(f"CSV row {number} is not all numbers: {line[:80]!r}") from None
    if len({len(row) for row in rows}) > 1:
        raise malformed("CSV rows have different numbers of columns")
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
        raise malformed(f"invalid JSON: {error}") from None
    if isinstance(document, dict):
        if "samples" not in document:
            raise malformed("a JSON object upload needs a 'samples' member")
        document = document["samples"]
    if not isinstance(document, list):
        raise malformed("JSON samples must be a list of rows")
    check_limits((len(document),), limits)
    try:
        array = np.asarray(document, dtype=np.float64)
    except (ValueError, TypeError):
        raise malformed("JSON samples must be a rectangular list of numbers") from None
    return array


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise malformed(f"the upload is not UTF-8 text: {error}") from None
