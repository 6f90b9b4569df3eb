"""Image batches: one .png, or a .zip of .png files (sorted by member name).

Images become float64 [N, C, H, W] with values in [0, 1] (8-bit pixels / 255); grayscale
images have C = 1, RGB images C = 3 (alpha is dropped). Nothing is written to disk, so member
names cannot escape anywhere; sizes are checked from headers before pixels are decoded, and
decompression is capped while it happens (a zip bomb stops at the cap, not at its claim).
"""

import io
import re
import zipfile
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

from service.errors import ApiError
from service.uploads.limits import ShapeCheck, UploadLimits, check_limits, malformed, too_large

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
EOCD_MAGIC = b"PK\x05\x06"  # end of central directory record: 22 bytes + a comment
EOCD_SIZE = 22
MAX_ZIP_COMMENT = 65_535
GRAY_MODES = ("1", "L", "LA", "I", "I;16")
# What macOS Finder's "Compress" adds beside the files: AppleDouble resource forks
# (__MACOSX/._name, or ._name beside the file) and folder view settings (.DS_Store).
SYSTEM_FOLDERS = ("__MACOSX",)
SYSTEM_FILES = (".DS_Store",)
SYSTEM_PREFIXES = ("._",)
PYTHON_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def decode_png(data: bytes, limits: UploadLimits, name: str | None = None) -> np.ndarray:
    """One PNG as float64 [C, H, W] in [0, 1]; the size is checked before decoding.

    name: the archive member it came from, named in errors."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                what = f"pixels of image {name!r}" if name else "image pixels"
                raise too_large(what, width * height, limits.max_image_pixels, "MAX_IMAGE_PIXELS")
            gray = image.mode in GRAY_MODES or (image.mode == "P" and not has_colour(image))
            mode = "L" if gray else "RGB"
            pixels = np.asarray(image.convert(mode), dtype=np.float64) / 255.0
    except Image.DecompressionBombError as error:  # PIL's own guard, far above ours
        raise ApiError(
            413,
            f"image too large: {error} (MAX_IMAGE_PIXELS is {limits.max_image_pixels})",
            "too-large",
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        subject = f"archive member {name!r} is not" if name else "not"
        raise malformed(f"{subject} a readable PNG image: {png_failure(error)}") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def png_failure(error: Exception) -> str:
    """Why PIL could not read a PNG, in words (PIL's own messages may hold a Python repr such
    as "<_io.BytesIO object at 0x...>", which must not reach a client)."""
    if isinstance(error, Image.UnidentifiedImageError):
        return "its bytes are not a PNG image (a damaged or incomplete header)"
    return PYTHON_REPR.sub("the image", str(error)) or type(error).__name__


def is_system_entry(name: str) -> bool:
    """True for the bookkeeping entries archivers add (macOS Finder's resource forks and
    .DS_Store), which are skipped rather than parsed."""
    path = PurePosixPath(name)
    return (
        any(part in SYSTEM_FOLDERS for part in path.parts)
        or path.name in SYSTEM_FILES
        or path.name.startswith(SYSTEM_PREFIXES)
    )


def has_colour(image: Image.Image) -> bool:
    """True for palette images whose palette is not gray."""
    if image.mode != "P":
        return False
    palette = np.asarray(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    return bool(np.any(palette != palette[:, :1]))


def parse_png(data: bytes, limits: UploadLimits) -> np.ndarray:
    """A single .png: a batch of one image, [1, C, H, W]."""
    return decode_png(data, limits)[None]


def declared_entries(data: bytes) -> int | None:
    """The entry count an archive's end-of-central-directory record declares (directories
    included), read without parsing the directory; None when there is no such record or the
    count is ZIP64's escape value (zipfile then parses and the file count is checked after)."""
    tail = data[-(EOCD_SIZE + MAX_ZIP_COMMENT) :]
    at = tail.rfind(EOCD_MAGIC)
    if at < 0 or len(tail) < at + EOCD_SIZE:
        return None
    total = int.from_bytes(tail[at + 10 : at + 12], "little")
    return None if total == 0xFFFF else total


def zip_members(data: bytes, suffix: str, limits: UploadLimits) -> list[tuple[str, bytes]]:
    """(name, bytes) of the archive's `suffix` members, sorted by name, within the limits;
    directories and system entries (is_system_entry) are skipped.

    An archive declaring more entries than MAX_ZIP_FILES is refused before its central
    directory is parsed (parsing 60,000 entries costs about a second of CPU)."""
    entries = declared_entries(data)
    if entries is not None and entries > limits.max_zip_files:
        raise too_large("entries in the archive", entries, limits.max_zip_files, "MAX_ZIP_FILES")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise malformed(f"not a readable .zip archive: {error}") from None
    if len(infos) > limits.max_zip_files:
        raise too_large("files in the archive", len(infos), limits.max_zip_files, "MAX_ZIP_FILES")
    chosen = sorted(
        (
            i
            for i in infos
            if i.filename.lower().endswith(suffix) and not is_system_entry(i.filename)
        ),
        key=lambda i: i.filename,
    )
    if not chosen:
        raise malformed(f"the archive holds no {suffix} file")
    budget, members = limits.max_decompressed_bytes, []
    for info in chosen:
        payload = read_capped(archive, info, budget, limits)
        budget -= len(payload)
        members.append((info.filename, payload))
    return members


def read_capped(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, limits: UploadLimits
) -> bytes:
    """One member's bytes, refusing to decompress past the remaining `budget`."""
    if info.file_size > budget:
        raise too_large(
            "decompressed size",
            info.file_size,
            limits.max_decompressed_bytes,
            "MAX_DECOMPRESSED_BYTES",
        )
    try:
        with archive.open(info) as stream:
            payload = stream.read(budget + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise malformed(f"archive member {info.filename!r} is damaged: {error}") from None
    if len(payload) > budget:
        raise too_large(
            "decompressed size",
            len(payload),
            limits.max_decompressed_bytes,
            "MAX_DECOMPRESSED_BYTES",
        )
    return payload


def parse_zip(
    data: bytes, limits: UploadLimits, check_shape: ShapeCheck | None = None
) -> np.ndarray:
    """A .zip of .png files: [N, C, H, W]; every image must have the same size and channels.

    The batch's shape is checked once the first image is decoded, so an archive of many
    large images is refused before the rest are (8 bytes a decoded value)."""
    members = zip_members(data, ".png", limits)
    check_limits((len(members),), limits)
    first_name, first = members[0][0], decode_png(members[0][1], limits, members[0][0])
    check_limits((len(members), *first.shape), limits, check_shape)
    images = np.empty((len(members), *first.shape))
    images[0] = first
    for index, (name, payload) in enumerate(members[1:], start=1):
        image = decode_png(payload, limits, name)
        if image.shape != first.shape:
            raise malformed(
                f"the images differ in shape (C, H, W): {first_name!r} is {list(first.shape)}, "
                f"{name!r} is {list(image.shape)}"
            )
        images[index] = image
    return images
