"""The OpenAPI document and a human docs page rendered from it (no assets from the internet)."""

from pathlib import Path

from flask import Blueprint, Response, redirect, url_for

from service.api.requests import service_config
from service.api.v2 import server_version
from service.openapi import openapi_document

blueprint = Blueprint("docs", __name__)
DOCS_PAGE = Path(__file__).resolve().parents[1] / "static" / "docs.html"


@blueprint.get("/")
def index() -> Response:
    """302 to the docs page, so that the bare address of the service shows something useful."""
    return redirect(url_for("docs.docs"))


@blueprint.get("/openapi.json")
def openapi() -> dict:
    return openapi_document(service_config(), server_version())


@blueprint.get("/docs")
def docs() -> Response:
    """One self-contained HTML page that renders /openapi.json in the browser."""
    return Response(DOCS_PAGE.read_bytes(), mimetype="text/html")
