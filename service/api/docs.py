"""The OpenAPI document and a human docs page rendered from it (no assets from the internet)."""

from pathlib import Path

from flask import Blueprint, Response

from service.api.requests import service_config
from service.api.v2 import server_version
from service.openapi import openapi_document

blueprint = Blueprint("docs", __name__)
DOCS_PAGE = Path(__file__).resolve().parents[1] / "static" / "docs.html"


@blueprint.get("/openapi.json")
def openapi() -> dict:
    return openapi_document(service_config(), server_version())


@blueprint.get("/docs")
def docs() -> Response:
    """One self-contained HTML page that renders /openapi.json in the browser."""
    return Response(DOCS_PAGE.read_bytes(), mimetype="text/html")
