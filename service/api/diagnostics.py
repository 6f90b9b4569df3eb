"""Diagnose an uploaded batch of samples against a reference."""

import time

import numpy as np
from flask import Blueprint, Response, jsonify

from lab.diagnostics import diagnose
from service import metrics
from service.api.inference import guard
from service.api.requests import (
    Reference,
    form_value,
    negotiate,
    read_batch,
    require_upload,
    resolve_reference,
    to_value_range,
)
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
    reference = resolve_reference(name) if name else None
    batch, upload_format = read_batch(upload, reference)
    if reference is not None:
        batch = to_value_range(batch, upload_format, reference.spec)
    return diagnosis_response(batch, reference, media_type)


def diagnose_with(batch: np.ndarray, reference: Reference | None) -> dict:
    """The report; for a classifier reference the classifier runs on the batch first."""
    if reference is None:
        return diagnose(batch, None, None)
    classified = None
    if reference.classifier is not None:
        classified = reference.classify(batch)
    return diagnose(
        batch, reference.spec, reference.name, reference.features, classified, reference.modes
    )


def diagnosis_response(
    batch: np.ndarray, reference: Reference | None, media_type: str, extra: dict | None = None
) -> Response:
    """Diagnose under the guard; answer the report as JSON or as its figure."""
    name = reference.name if reference else "none"
    started = time.perf_counter()
    report = guard().run(diagnose_with, batch, reference)
    metrics.DIAGNOSTICS_SECONDS.labels(reference=name).observe(time.perf_counter() - started)
    if media_type == "image/png":
        spec = reference.spec if reference else None
        features = reference.features if reference else None
        exemplars = reference.exemplars if reference else None
        png = guard().run(render_report, report, batch, spec, features, exemplars)
        return Response(png, mimetype="image/png")
    return jsonify({**(extra or {}), **report})
