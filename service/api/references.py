"""References: what diagnostics compare against."""

from flask import Blueprint

from service.api.common import ready_entry, repository

blueprint = Blueprint("references", __name__, url_prefix="/v1/references")


@blueprint.get("")
def list_references() -> dict:
    entries = repository().of_kind("reference")
    return {"references": [{"name": e.name, "ready": e.ready, "error": e.error,
                            "dataset": (e.card or {}).get("dataset"),
                            "description": (e.card or {}).get("description")} for e in entries]}


@blueprint.get("/<name>")
def get_reference(name: str) -> dict:
    """The whole reference card (centres, std and weights for mixtures)."""
    return ready_entry(name, "reference").card
