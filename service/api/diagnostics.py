"""Diagnose an uploaded batch of samples against a reference."""

import time

from flask import Blueprint

from service import metrics
from service.api.common import guard, read_batch, require_upload, resolve_reference
from service.diagnostics import diagnose

blueprint = Blueprint("diagnostics", __name__, url_prefix="/v1/diagnostics")


@blueprint.post("")
def diagnostics() -> dict:
    """multipart/form-data: `file` (the batch) and `reference` (a reference name) -> report."""
    upload, fields = require_upload("reference")
    spec, features = resolve_reference(fields["reference"])
    batch = read_batch(upload)
    started = time.perf_counter()
    report = guard().run(diagnose, batch, spec, fields["reference"], features)
    metrics.DIAGNOSTICS_SECONDS.labels(reference=fields["reference"]).observe(
        time.perf_counter() - started)
    return report
