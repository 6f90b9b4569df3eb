"""gzip for JSON and NPY answers when the client asks for it (Accept-Encoding), one after-request
step. PNG and ZIP are compressed already; binary /v2 answers (octet-stream, whose
Inference-Header-Content-Length counts bytes of the uncompressed body) and streamed answers are
sent as they are."""

import zlib

from flask import Flask, Response, request

COMPRESSIBLE = frozenset({"application/json", "application/problem+json", "application/x-npy"})
# zlib level 5: about the ratio of level 9 on float text and NPY, at a third of the time.
LEVEL = 5
GZIP_WBITS = 31  # zlib's window of 2^15 with a gzip header and trailer (RFC 1952)


def register_compression(app: Flask) -> None:
    """Compress eligible answers of at least GZIP_MIN_BYTES unless GZIP=off."""
    config = app.config["SERVICE"]
    if config.gzip == "off":
        return
    minimum = config.gzip_min_bytes

    @app.after_request
    def compress(response: Response) -> Response:
        if (
            response.mimetype not in COMPRESSIBLE
            or response.direct_passthrough
            or response.is_streamed
            or "Content-Encoding" in response.headers
            or (response.content_length or 0) < minimum
        ):
            return response
        response.vary.add("Accept-Encoding")  # caches must key on it, compressed or not
        if request.accept_encodings["gzip"] > 0:
            response.set_data(gzip_bytes(response.get_data()))
            response.headers["Content-Encoding"] = "gzip"
        return response


def gzip_bytes(data: bytes) -> bytes:
    """`data` as one gzip member (what `gzip.decompress` reads back)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WBITS)
    return compressor.compress(data) + compressor.flush()
