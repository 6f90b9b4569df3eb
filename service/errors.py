"""One error type and the handlers that turn every failure into RFC 9457 problem+json.

Each body has `type`, `title`, `status`, `detail` and an `error` member repeating `detail`,
which is where KServe/Triton clients read a failed call's message.
"""

import logging
from http import HTTPStatus

from flask import Flask, Response, g, json, request
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from lab.diagnostics import DiagnosticsError

PROBLEM_MIME = "application/problem+json"
log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure to report to the client.

    `slug` names the problem type (`/problems/<slug>`, listed in docs/api.md); `extra` adds
    members to the body (e.g. `not_ready`); `headers` adds response headers (e.g. Retry-After).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        slug: str | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.extra = extra or {}
        self.headers = headers or {}


def problem_body(error: ApiError) -> dict:
    """The problem+json document of `error` (with the request id while serving one)."""
    body = {
        "type": f"/problems/{error.slug}" if error.slug else "about:blank",
        "title": HTTPStatus(error.status).phrase,
        "status": error.status,
        "detail": error.detail,
        "error": error.detail,
        **error.extra,
    }
    request_id = g.get("request_id") if g else None
    if request_id:
        body["request_id"] = request_id
    return body


def problem_response(error: ApiError) -> Response:
    """The problem+json response for `error`."""
    body = problem_body(error)
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_MIME)
    response.headers.update(error.headers)
    return response


def routing_detail(error: HTTPException) -> str | None:
    """For a request that matched no route (404) or not with its method (405), a detail naming
    the method and path instead of werkzeug's generic text; None for any other error."""
    if request.url_rule is not None or not isinstance(error, NotFound | MethodNotAllowed):
        return None
    asked = f"{request.method} {request.path}"
    if isinstance(error, MethodNotAllowed):
        allowed = sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"})
        return f"{asked}: method not allowed; allowed: {', '.join(allowed)}"
    served = "; the routes are listed at /docs"
    if request.path == "/v2" or request.path.startswith("/v2/"):
        served = (
            "; /v2 serves the Open Inference Protocol's health, metadata, infer and repository "
            "index routes (no other Triton extension), listed at /docs"
        )
    return f"no route {asked}{served}"


def register_error_handlers(app: Flask) -> None:
    """Route ApiError, werkzeug's HTTP errors and anything unexpected to problem+json."""
    max_bytes = app.config["SERVICE"].max_upload_bytes

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        return problem_response(error)

    @app.errorhandler(DiagnosticsError)
    def handle_unusable(error: DiagnosticsError) -> Response:
        return problem_response(ApiError(422, str(error), "unusable-samples"))

    @app.errorhandler(RequestEntityTooLarge)
    def handle_too_large(error: RequestEntityTooLarge) -> Response:
        detail = f"request body exceeds the limit of {max_bytes} bytes (MAX_UPLOAD_BYTES)"
        return problem_response(ApiError(413, detail, "too-large"))

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        detail = routing_detail(error) or error.description or ""
        response = problem_response(ApiError(error.code or 500, detail))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(ApiError(500, "internal error; see the service log", "internal"))
