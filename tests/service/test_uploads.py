"""Upload parsing: every format, and each limit refused with a clear 4xx."""

import io
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from service.errors import ApiError
from service.uploads import UploadLimits, parse_batch

LIMITS = UploadLimits(
    max_samples=1000,
    max_dim=4096,
    max_image_pixels=64 * 64,
    max_zip_files=20,
    max_decompressed_bytes=1 << 20,
)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def refused(data: bytes, filename: str, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as error:
        parse_batch(data, filename, None, LIMITS, **kwargs)
    return error.value


def test_npz_single_array():
    batch = parse_batch(npz_bytes(x=np.ones((5, 2))), "a.npz", None, LIMITS)
    assert batch.shape == (5, 2) and batch.dtype == np.float64


def test_npz_named_key_and_ambiguity():
    data = npz_bytes(real=np.zeros((3, 2)), fake=np.ones((4, 2)))
    assert parse_batch(data, "a.npz", None, LIMITS, key="fake").shape == (4, 2)
    assert "name one with the 'key' field" in refused(data, "a.npz").detail
    assert "no array 'other'" in refused(data, "a.npz", key="other").detail


def test_gray_png_is_one_sample_in_unit_range():
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    batch = parse_batch(png_bytes(pixels), "digit.png", None, LIMITS)
    assert batch.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(batch[0, 0], pixels / 255.0)


def test_zip_of_rgb_pngs_sorted_by_name():
    images = {f"{i:02d}.png": png_bytes(np.full((8, 8, 3), i * 10, np.uint8)) for i in (3, 1, 2)}
    batch = parse_batch(zip_bytes(images), "batch.zip", None, LIMITS)
    assert batch.shape == (3, 3, 8, 8)
    np.testing.assert_allclose(batch[:, 0, 0, 0], np.array([10, 20, 30]) / 255.0)


def test_format_from_magic_without_a_name():
    data = png_bytes(np.zeros((8, 8), np.uint8))
    assert parse_batch(data, None, None, LIMITS).shape == (1, 1, 8, 8)


@pytest.mark.parametrize(
    ("make", "filename", "status", "fragment"),
    [
        (
            lambda: zip_bytes({"a.png": b"\0" * (2 << 20)}),
            "bomb.zip",
            413,
            "MAX_DECOMPRESSED_BYTES",
        ),
        (lambda: zip_bytes({f"{i}.png": b"" for i in range(21)}), "many.zip", 413, "MAX_ZIP_FILES"),
        (lambda: png_bytes(np.zeros((65, 64), np.uint8)), "big.png", 413, "MAX_IMAGE_PIXELS"),
        (lambda: zip_bytes({"notes.txt": b"hi"}), "x.zip", 400, "no .png file"),
        (
            lambda: zip_bytes(
                {
                    "a.png": png_bytes(np.zeros((8, 8), np.uint8)),
                    "b.png": png_bytes(np.zeros((9, 8), np.uint8)),
                }
            ),
            "x.zip",
            400,
            "differ in shape",
        ),
        (lambda: zip_bytes({"a.png": b"not a png"}), "x.zip", 400, "not a readable PNG"),
        (lambda: b"PK\x03\x04 truncated", "x.zip", 400, "not a readable .zip"),
        (lambda: png_bytes(np.zeros((8, 8), np.uint8))[:40], "x.png", 400, "not a readable PNG"),
        (lambda: zip_bytes({"../../etc/evil.png": b"x"}), "x.zip", 400, "not a readable PNG"),
    ],
)
def test_hostile_or_broken_archives_and_images(make, filename, status, fragment):
    error = refused(make(), filename)
    assert error.status == status and fragment in error.detail


def test_png_declaring_a_huge_size_is_refused_before_decoding():
    """A PNG header claiming 100000 x 100000 pixels is refused from its header alone."""
    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # a valid IHDR checksum
    error = refused(bytes(data), "bomb.png")
    assert error.status == 413 and "MAX_IMAGE_PIXELS" in error.detail


def test_zip_entry_count_is_read_from_the_end_record():
    from service.uploads.images import declared_entries

    data = zip_bytes({f"{i}.png": b"" for i in range(7)})
    assert declared_entries(data) == 7
    assert declared_entries(b"not a zip") is None


def savetxt_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.savetxt(buffer, array, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "kwargs", [{}, {"delimiter": ","}, {"delimiter": ";"}, {"delimiter": "\t"}, {"fmt": "%.3f"}]
)
def test_savetxt_output_keeps_every_row(kwargs):
    """np.savetxt's default (space-separated) and other separators: no row taken as a header."""
    array = np.arange(12, dtype=np.float64).reshape(6, 2) / 4
    batch = parse_batch(savetxt_bytes(array, **kwargs), "a.csv", None, LIMITS)
    np.testing.assert_allclose(batch, array)


@pytest.mark.parametrize(
    "text",
    ["x,y\n1,2\n3,4\n", "x y\n1 2\n3 4\n", "# x y\n1  2\n\n3\t4\n", "x;y\r\n1;2\r\n3;4\r\n"],
)
def test_a_first_row_is_a_header_only_when_not_numeric(text):
    batch = parse_batch(text.encode(), "a.csv", None, LIMITS)
    np.testing.assert_array_equal(batch, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x y\n1 2\n\n3 4\n5 6\n\n7 8 9\n", "line 7: expected 2 values, got 3"),
        ("1,2\n3,abc\n", "line 2: 'abc' is not a number"),
        ("1,,2\n", "line 1: value 2 is empty"),
        ("1,5;2,5\n", "line 1: '1,5' is not a number"),
    ],
)
def test_csv_errors_name_the_file_line(text, fragment):
    error = refused(text.encode(), "a.csv")
    assert error.status == 400 and fragment in error.detail, error.detail


def test_macos_finder_zip_skips_resource_forks_and_ds_store():
    """Finder's "Compress" adds __MACOSX/._<name> (AppleDouble) and .DS_Store entries."""
    image = png_bytes(np.full((8, 8), 40, np.uint8))
    members = {
        "digits/a.png": image,
        "digits/b.png": image,
        "__MACOSX/digits/._a.png": b"\x00\x05\x16\x07 AppleDouble",
        "__MACOSX/digits/._b.png": b"\x00\x05\x16\x07 AppleDouble",
        "digits/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "digits/._c.png": b"\x00\x05\x16\x07 AppleDouble",
    }
    assert parse_batch(zip_bytes(members), "digits.zip", None, LIMITS).shape == (2, 1, 8, 8)
    array = io.BytesIO()
    np.save(array, np.ones((3, 2)))
    npz = zip_bytes({"x.npy": array.getvalue(), "__MACOSX/._x.npy": b"\x00\x05\x16\x07"})
    assert parse_batch(npz, "a.npz", None, LIMITS).shape == (3, 2)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"not a png", "archive member 'batch/b.png' is not a readable PNG image"),
        (png_bytes(np.zeros((8, 8), np.uint8))[:8], "archive member 'batch/b.png'"),
    ],
)
def test_a_failing_zip_member_is_named_without_python_reprs(payload, fragment):
    members = {"batch/a.png": png_bytes(np.zeros((8, 8), np.uint8)), "batch/b.png": payload}
    detail = refused(zip_bytes(members), "x.zip").detail
    assert fragment in detail and "<" not in detail and " at 0x" not in detail, detail


def test_an_unreadable_png_message_has_no_python_repr():
    detail = refused(png_bytes(np.zeros((8, 8), np.uint8))[:8], "x.png").detail
    assert detail.startswith("not a readable PNG image") and "BytesIO" not in detail, detail


def test_a_zip_over_the_per_sample_limit_is_refused_after_one_image(monkeypatch):
    """Decoded pixels are 8 bytes each: a zip of many large images must not all be decoded
    before the per-sample limit (MAX_UPLOAD_DIM) is checked."""
    from service.uploads import images

    decoded = []
    decode = images.decode_png
    monkeypatch.setattr(images, "decode_png", lambda *a, **k: decoded.append(1) or decode(*a, **k))
    members = {f"{i:02d}.png": png_bytes(np.zeros((64, 64, 3), np.uint8)) for i in range(10)}
    error = refused(zip_bytes(members), "big.zip")
    assert error.status == 413 and "MAX_UPLOAD_DIM" in error.detail and len(decoded) == 1
