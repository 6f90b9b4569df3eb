"""The limits every upload parser checks, each named after the setting that sets it."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.errors import ApiError


@dataclass(frozen=True)
class UploadLimits:
    max_samples: int  # MAX_UPLOAD_SAMPLES: rows (samples) in one batch
    max_dim: int  # MAX_UPLOAD_DIM: values per sample
    max_image_pixels: int = 1 << 20  # MAX_IMAGE_PIXELS: width x height of one image
    max_zip_files: int = 50_000  # MAX_ZIP_FILES: members of one .zip/.npz
    max_decompressed_bytes: int = 256 << 20  # MAX_DECOMPRESSED_BYTES: all members, unpacked


# Called with a batch's shape [N, ...] as soon as it is known and before the size limits; it
# raises (e.g. a 422 when the samples do not fit the chosen reference) to refuse the shape.
ShapeCheck = Callable[[tuple[int, ...]], None]


def too_large(what: str, value: int, limit: int, setting: str) -> ApiError:
    return ApiError(413, f"{what} ({value}) exceeds the limit of {limit} ({setting})", "too-large")


def check_limits(
    shape: tuple[int, ...], limits: UploadLimits, check_shape: ShapeCheck | None = None
) -> None:
    """413 when a batch of `shape` has more rows or more values per row than allowed; first
    check_shape(shape), so a batch that cannot fit a reference is told so rather than that it
    is too large."""
    if check_shape is not None:
        check_shape(tuple(shape))
    if shape and shape[0] > limits.max_samples:
        raise too_large("number of samples", shape[0], limits.max_samples, "MAX_UPLOAD_SAMPLES")
    per_row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    if per_row > limits.max_dim:
        raise too_large("values per sample", per_row, limits.max_dim, "MAX_UPLOAD_DIM")


def malformed(detail: str) -> ApiError:
    return ApiError(400, detail, "malformed-upload")
