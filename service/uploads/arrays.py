"""NumPy batches: .npy and .npz, never unpickled, headers checked before data is read."""

import io

import numpy as np

from service.errors import ApiError
from service.uploads.limits import ShapeCheck, UploadLimits, check_limits, malformed

NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def parse_npy(
    data: bytes, limits: UploadLimits, check_shape: ShapeCheck | None = None
) -> np.ndarray:
    """A .npy file with a numeric dtype; the header is checked before the data is read."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"format version {version} is not supported (use 1.0 or 2.0)")
        shape, _, dtype = read_header(stream)
    except (ValueError, SyntaxError, TypeError) as error:
        raise malformed(f"not a valid .npy file: {error}") from None
    if not shape:
        raise malformed(
            ".npy holds one number (shape ()), not a batch: send N samples as [N] or [N, d]"
        )
    if any(size < 0 for size in shape):
        raise malformed(f"not a valid .npy file: its header declares a negative dimension {shape}")
    if dtype.kind not in "biuf":
        raise malformed(
            f".npy dtype {dtype} is not numeric (object, string and structured arrays are refused)"
        )
    check_limits(shape, limits, check_shape)
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - stream.tell() < expected:
        raise malformed(f".npy file is truncated: header says {shape} {dtype}")
    stream.seek(0)
    return np.load(stream, allow_pickle=False).astype(np.float64)


def parse_npz(
    data: bytes,
    limits: UploadLimits,
    key: str | None = None,
    check_shape: ShapeCheck | None = None,
) -> np.ndarray:
    """One array of a .npz archive: the only one, or the one named `key`."""
    from service.uploads.images import zip_members  # the capped, bomb-proof zip reader

    arrays = {
        name.removesuffix(".npy"): payload for name, payload in zip_members(data, ".npy", limits)
    }
    if key is None and len(arrays) > 1:
        raise malformed(
            f".npz holds several arrays ({', '.join(sorted(arrays))}); "
            "name one with the 'key' field"
        )
    chosen = key if key is not None else next(iter(arrays))
    if chosen not in arrays:
        raise malformed(f".npz has no array {chosen!r} (it has {', '.join(sorted(arrays))})")
    try:
        return parse_npy(arrays[chosen], limits, check_shape)
    except ApiError as error:  # the same problem, naming the member
        raise ApiError(error.status, f".npz array {chosen!r}: {error.detail}", error.slug) from None
