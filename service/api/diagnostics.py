"""Diagnose an uploaded batch of samples against a reference."""

import time

import numpy as np
from flask import Blueprint, Response, jsonify

from service import metrics
from service.api.common import (
    form_value,
    guard,
    negotiate,
    read_batch,
    require_upload,
    resolve_reference,
)
from service.diagnostics import diagnose
from service.figures import render_report

REPORT_FORMATS = ("application/json", "image/png")

blueprint = Blueprint("diagnostics", __name__, url_prefix="/v1/diagnostics")


@blueprint.post("")
def diagnostics() -> Response:
    """multipart/form-data: `file` (the batch) and `reference` (a reference name) -> report
    (JSON, or a PNG figure with `Accept: image/png`). Without `reference`: the Vendi score and
    duplicates only."""
    upload, _ = require_upload()
    media_type = negotiate(REPORT_FORMATS)
    name = form_value("reference")
    spec, features = resolve_reference(name) if name else (None, None)
    return diagnosis_response(read_batch(upload), name, spec, features, media_type)


def diagnosis_response(
    batch: np.ndarray,
    name: str,
    spec: dict,
    features: np.ndarray | None,
    media_type: str,
    extra: dict | None = None,
) -> Response:
    """Diagnose under the guard; answer the report as JSON or as its figure."""
    started = time.perf_counter()
    report = guard().run(diagnose, batch, spec, name, features)
    metrics.DIAGNOSTICS_SECONDS.labels(reference=name or "none").observe(
        time.perf_counter() - started
    )
    if media_type == "image/png":
        png = guard().run(render_report, report, batch, spec, features)
        return Response(png, mimetype="image/png")
    return jsonify({**(extra or {}), **report})
