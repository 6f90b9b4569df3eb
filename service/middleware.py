"""Per-request steps around every route: request id, W3C trace context, optional API key, HTTP
metrics."""

import hmac
import random
import re
import time

from flask import Flask, Response, g, request

from service import metrics
from service.errors import ApiError

REQUEST_ID = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
TRACEPARENT = "traceparent"
# Folders whose files (one level, no subfolders) are open: the pages' scripts and styles.
OPEN_FOLDERS = ("/docs/", "/ui/")
# W3C Trace Context, version 00: 00-<trace id>-<parent span id>-<flags>, lower-case hex.
VALID_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# Open without a key: probes, metrics scrapers, the documentation and the upload page (whose
# API calls carry the key the person types in).
OPEN_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/ui",
        "/openapi.json",
        "/v2/health/live",
        "/v2/health/ready",
    }
)


def register_request_hooks(app: Flask) -> None:
    api_key = app.config["SERVICE"].api_key

    @app.before_request
    def begin() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID, "")
        g.request_id = incoming if VALID_REQUEST_ID.fullmatch(incoming) else new_request_id()
        traceparent = request.headers.get(TRACEPARENT)
        if traceparent is not None:
            g.trace = parse_traceparent(traceparent)
        # A CORS preflight never carries credentials (and Flask's own OPTIONS answer is the Allow
        # header), so OPTIONS is open.
        if api_key and request.method != "OPTIONS" and not is_open(request.path):
            check_api_key(api_key)

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID] = g.get("request_id", "")
        trace = g.get("trace")
        if trace is not None:  # continue the caller's trace with this request as its span
            response.headers[TRACEPARENT] = f"00-{trace[0]}-{new_span_id()}-{trace[1]}"
        route = request.url_rule.rule if request.url_rule else "unmatched"
        labels = (request.method, route, str(response.status_code))
        metrics.child(metrics.REQUESTS, *labels).inc()
        started = g.get("started")
        if started is not None:
            metrics.child(metrics.REQUEST_DURATION, *labels).observe(time.perf_counter() - started)
        return response


def is_open(path: str) -> bool:
    """Served without the API key: OPEN_PATHS, and the files of the /docs and /ui pages (a
    browser loads them without the key, like the pages)."""
    if path in OPEN_PATHS:
        return True
    folder = next((f for f in OPEN_FOLDERS if path.startswith(f)), None)
    return folder is not None and "/" not in path[len(folder) :]


def new_request_id() -> str:
    """32 hex digits from the process's Mersenne Twister (reseeded in each forked worker):
    an id to correlate logs, not a secret, so no os.urandom system call per request (a
    uuid4 was 3% of a worker's time serving small requests)."""
    return f"{random.getrandbits(128):032x}"


def parse_traceparent(value: str) -> tuple[str, str] | None:
    """(trace id, flags) of a valid version-00 `traceparent`; None for anything else (the
    all-zero ids are invalid too, W3C Trace Context section 3.2.2)."""
    match = VALID_TRACEPARENT.fullmatch(value.strip())
    if match is None or match[1] == "0" * 32 or match[2] == "0" * 16:
        return None
    return match[1], match[3]


def new_span_id() -> str:
    """16 hex digits, never all zero: this request's span in the caller's trace."""
    return f"{random.getrandbits(64) | 1:016x}"


def check_api_key(api_key: str) -> None:
    """401 unless `Authorization: Bearer <API_KEY>`; constant-time comparison."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), api_key.encode()
    ):
        raise ApiError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            "unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="collapse-lab"'},
        )
