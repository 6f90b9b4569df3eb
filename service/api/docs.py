"""The OpenAPI document and interactive docs: Swagger UI over it, with its assets from the
swagger-ui-py package served here (nothing is fetched from the internet)."""

import importlib.util
from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory, url_for
from werkzeug.exceptions import NotFound

from service.api.requests import service_config
from service.api.v2 import server_version
from service.openapi import openapi_document

blueprint = Blueprint("docs", __name__)
STATIC = Path(__file__).resolve().parents[1] / "static"
DOCS_PAGE = STATIC / "docs.html"
# Swagger UI 5 (the first to render OpenAPI 3.1) as swagger-ui-py ships it; the folder is found
# without importing that package, which would pull in its web-framework adapters.
SWAGGER_UI = Path(importlib.util.find_spec("swagger_ui").submodule_search_locations[0]) / "static"
# The files the page loads: Swagger UI's own (from the package) and our initializer.
SWAGGER_ASSETS = (
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "favicon-32x32.png",
)


@blueprint.get("/")
def index() -> Response:
    """302 to the docs page, so that the bare address of the service shows something useful."""
    return redirect(url_for("docs.docs"))


@blueprint.get("/openapi.json")
def openapi() -> dict:
    return openapi_document(service_config(), server_version())


@blueprint.get("/docs")
def docs() -> Response:
    """Swagger UI over /openapi.json, with try-it-out, file uploads and the API-key box."""
    return Response(DOCS_PAGE.read_bytes(), mimetype="text/html")


@blueprint.get("/docs/<asset>")
def docs_asset(asset: str) -> Response:
    """A file of the docs page (404 for any other name); cached for a day."""
    if asset == "init.js":
        return send_from_directory(STATIC, "docs-init.js", max_age=86400)
    if asset not in SWAGGER_ASSETS:
        raise NotFound()
    return send_from_directory(SWAGGER_UI, asset, max_age=86400)
