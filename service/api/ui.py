"""The upload page at /ui: plain HTML and one script (service/static/upload.*) over the JSON
API, so a person can diagnose a batch or a model from a browser without writing a client."""

from flask import Blueprint, Response, send_from_directory
from werkzeug.exceptions import NotFound

from service.api.docs import STATIC

blueprint = Blueprint("ui", __name__)
UPLOAD_PAGE = STATIC / "upload.html"
UI_ASSETS = ("upload.js", "upload.css")
# The page runs only its own script and style sheet, talks only to this origin, and shows the
# figure from a blob: URL; nothing inline, nothing from elsewhere, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@blueprint.get("/ui")
def upload_page() -> Response:
    """The page: an API-key box, generate-and-diagnose, upload-and-diagnose, the report."""
    response = Response(UPLOAD_PAGE.read_bytes(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@blueprint.get("/ui/<asset>")
def ui_asset(asset: str) -> Response:
    """The page's script or style sheet (404 for any other name); cached for an hour."""
    if asset not in UI_ASSETS:
        raise NotFound()
    return send_from_directory(STATIC, asset, max_age=3600)
