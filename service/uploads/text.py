"""CSV and JSON batches: rows of numbers."""

import json

import numpy as np

from service.uploads.limits import UploadLimits, check_limits, malformed


def parse_csv(data: bytes, limits: UploadLimits) -> np.ndarray:
    """Rows of numbers separated by commas, semicolons or whitespace (np.savetxt's default), one
    separator per file; blank lines and `#` comment lines are skipped, and a first row none of
    whose values looks like a number (e.g. `x,y`) is a header. Errors name the file's lines."""
    text = decode_utf8(data).replace("\r\n", "\n").replace("\r", "\n")
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    separator = csv_separator(lines[0][1]) if lines else None
    if lines and not any(looks_numeric(value) for value in split_row(lines[0][1], separator)):
        lines = lines[1:]
    check_limits((len(lines),), limits)
    if not lines:
        return np.zeros((0, 0))
    rows = [parse_row(number, line, separator) for number, line in lines]
    width = len(rows[0])
    for (number, _), row in zip(lines, rows, strict=True):
        if len(row) != width:
            raise malformed(f"line {number}: expected {width} values, got {len(row)}")
    return np.asarray(rows, dtype=np.float64)


def csv_separator(line: str) -> str | None:
    """The file's separator, from its first row: ';', else ',', else None (whitespace)."""
    return ";" if ";" in line else "," if "," in line else None


def split_row(line: str, separator: str | None) -> list[str]:
    return [value.strip() for value in line.split(separator)]


def parse_row(number: int, line: str, separator: str | None) -> list[float]:
    """The values of one data line, or a 400 naming the line and the value at fault."""
    values = split_row(line, separator)
    for index, value in enumerate(values, start=1):
        if not value:
            raise malformed(f"line {number}: value {index} is empty")
        if not is_number(value):
            raise malformed(
                f"line {number}: {value[:40]!r} is not a number "
                "(separate values by commas, semicolons or whitespace; '.' marks decimals)"
            )
    return [float(value) for value in values]


def looks_numeric(value: str) -> bool:
    """A number, or a value starting like one (`1,5` under `;` is a bad number, not a name)."""
    return is_number(value) or value[:1] in tuple("0123456789+-.")


def is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def parse_json(data: bytes, limits: UploadLimits) -> np.ndarray:
    """`[[x, y], ...]` or `{"samples": [[x, y], ...]}` (the service's own sample format).

    Integers are read as floats, so one beyond float64 is inf (refused later, as 1e999 is)
    rather than an int that numpy cannot convert or that Python refuses to parse. The samples
    endpoint's own answer (an object with `model` and `samples`) holds float32 values written
    as their shortest decimals: read back as float32, they are the generated samples exactly."""
    try:
        document = json.loads(decode_utf8(data), parse_int=float)
    except ValueError as error:  # json.JSONDecodeError included
        raise malformed(f"invalid JSON: {error}") from None
    except RecursionError:
        raise malformed(
            "JSON nested too deeply: send rows of numbers [[x, y], ...] "
            "(images at most [N, C, H, W])"
        ) from None
    float32_answer = isinstance(document, dict) and "model" in document
    if isinstance(document, dict):
        if "samples" not in document:
            raise malformed("a JSON object upload needs a 'samples' member")
        document = document["samples"]
    if not isinstance(document, list):
        raise malformed("JSON samples must be a list of rows")
    check_limits((len(document),), limits)
    try:
        array = np.asarray(document, dtype=np.float64)
    except (ValueError, TypeError, RecursionError):
        raise malformed("JSON samples must be a rectangular list of numbers") from None
    if float32_answer:
        with np.errstate(over="ignore"):  # beyond float32 is inf, refused later as 1e999 is
            array = array.astype(np.float32).astype(np.float64)
    return array


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise malformed(f"the upload is not UTF-8 text: {error}") from None
