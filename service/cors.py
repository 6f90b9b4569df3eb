"""CORS for browser clients on other origins, off unless CORS_ORIGINS is set (then one
before-request step answers preflights and one after-request step marks the answers)."""

from flask import Flask, Response, request

ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, Prefer, X-Request-ID, Inference-Header-Content-Length"
)
# Response headers a browser script may read beyond the CORS-safelisted ones.
EXPOSE_HEADERS = (
    "X-Request-ID, X-Seed, X-Model-Version, X-Steps, X-Sampler, Retry-After, Location, "
    "Preference-Applied, Inference-Header-Content-Length, traceparent"
)
MAX_AGE = "600"  # seconds a browser may cache a preflight's answer


def register_cors(app: Flask) -> None:
    """Allow the origins of CORS_ORIGINS ("*": any); nothing at all when it is empty."""
    origins = app.config["SERVICE"].allowed_origins()
    if not origins:
        return
    any_origin = "*" in origins

    def allowed(origin: str | None) -> bool:
        return origin is not None and (any_origin or origin in origins)

    @app.before_request
    def preflight() -> Response | None:
        """204 to a preflight (OPTIONS with Access-Control-Request-Method) from an allowed
        origin; any other OPTIONS goes on to Flask's own answer (200 with Allow)."""
        origin = request.headers.get("Origin")
        if (
            request.method != "OPTIONS"
            or "Access-Control-Request-Method" not in request.headers
            or not allowed(origin)
        ):
            return None
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @app.after_request
    def mark(response: Response) -> Response:
        response.vary.add("Origin")  # the answer depends on it whenever CORS is on
        origin = request.headers.get("Origin")
        if allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response
