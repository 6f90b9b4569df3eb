"""Liveness and readiness, for load balancers and Kubernetes probes."""

from flask import Blueprint, Response

from service import metrics
from service.api.requests import job_store, repository
from service.errors import ApiError
from service.jobs import STATES

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> dict:
    """200 while the process serves requests."""
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz() -> dict:
    """200 when every model in the repository is loaded; 503 naming those that are not."""
    not_ready = repository().not_ready()
    if not_ready:
        names = ", ".join(sorted(not_ready))
        raise ApiError(503, f"not ready: {names}", "not-ready", extra={"not_ready": not_ready})
    return {"status": "ready", "models": sorted(repository().entries)}


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text format, aggregated over all gunicorn workers."""
    counts = dict.fromkeys(STATES, 0)
    for job in job_store().jobs():
        counts[job["state"]] += 1
    body, content_type = metrics.exposition(counts)
    return Response(body, content_type=content_type)
