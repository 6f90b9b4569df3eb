"""Turn an uploaded batch into a float64 array [N, ...], safely.

Formats: .npy, .npz (one array, or the one named by `key`), .csv (header optional), .json,
.png (one image) and .zip of .png files. Nothing is unpickled (.npy headers are read first and
object dtypes refused; `allow_pickle=False` as well), nothing is written to disk, and sizes are
checked against the limits before parsing where the format allows it. Every failure is an
ApiError: 400 malformed, 413 over a limit (naming it and its value), 415 unsupported format.
"""

from pathlib import PurePath

import numpy as np

from service.errors import ApiError
from service.uploads.arrays import parse_npy, parse_npz
from service.uploads.images import PNG_MAGIC, ZIP_MAGIC, parse_png, parse_zip
from service.uploads.limits import ShapeCheck, UploadLimits, check_limits, malformed
from service.uploads.text import parse_csv, parse_json

__all__ = ["ShapeCheck", "UploadLimits", "parse_batch", "parse_upload", "FORMATS"]

NPY_MAGIC = b"\x93NUMPY"
FORMATS = {  # file extension -> format; then the magic bytes; then the part's Content-Type
    ".npy": "npy",
    ".npz": "npz",
    ".csv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".png": "png",
    ".zip": "zip",
}
MAGIC = ((NPY_MAGIC, "npy"), (PNG_MAGIC, "png"), (ZIP_MAGIC, "zip"))
MIME_FORMATS = {
    "application/x-npy": "npy",
    "text/csv": "csv",
    "text/plain": "csv",
    "application/json": "json",
    "image/png": "png",
    "application/zip": "zip",
}


def detect_format(filename: str | None, content_type: str | None, head: bytes) -> str:
    """The format by file extension, else by magic bytes, else by the part's Content-Type."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in MIME_FORMATS:
        return MIME_FORMATS[mime]
    supported = ", ".join(sorted(FORMATS))
    raise ApiError(
        415,
        f"cannot tell the format of {filename or 'the upload'!r}; "
        f"send one of {supported} (by file name or Content-Type)",
        "unsupported-format",
    )


def parse_batch(
    data: bytes,
    filename: str | None,
    content_type: str | None,
    limits: UploadLimits,
    key: str | None = None,
) -> np.ndarray:
    """The uploaded batch as float64 [N, ...]: N samples (a 1-D upload is N samples of 1 value).

    key: the array to take from a .npz holding several (ignored by other formats).
    """
    return parse_upload(data, filename, content_type, limits, key)[0]


def parse_upload(
    data: bytes,
    filename: str | None,
    content_type: str | None,
    limits: UploadLimits,
    key: str | None = None,
    check_shape: ShapeCheck | None = None,
) -> tuple[np.ndarray, str]:
    """(the batch as parse_batch gives it, its format as detect_format names it: the format is
    detected once, and the caller may need it, e.g. to rescale PNG pixels).

    check_shape: called with the batch's shape as soon as it is known (a .npy header, a .zip's
    first image), before the size limits; it raises to refuse a shape."""
    if not data:
        raise malformed("the uploaded file is empty")
    kind = detect_format(filename, content_type, data[:8])
    if kind == "npz":
        array = parse_npz(data, limits, key, check_shape)
    elif kind in ("npy", "zip"):
        array = {"npy": parse_npy, "zip": parse_zip}[kind](data, limits, check_shape)
    else:
        array = {"csv": parse_csv, "json": parse_json, "png": parse_png}[kind](data, limits)
    if array.ndim == 1:
        array = array.reshape(-1, 1) if array.size else array.reshape(0, 0)
    check_limits(array.shape, limits, check_shape)
    return array, kind
