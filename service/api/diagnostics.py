"""Diagnose an uploaded batch of samples against a reference."""

import time

from flask import Blueprint, request

from service import metrics
from service.api.common import guard, ready_entry, upload_limits
from service.diagnostics import DiagnosticsError, diagnose
from service.errors import ApiError
from service.uploads import parse_batch

blueprint = Blueprint("diagnostics", __name__, url_prefix="/v1/diagnostics")


@blueprint.post("")
def diagnostics() -> dict:
    """multipart/form-data: `file` (the batch) and `reference` (a reference name) -> report."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "send multipart/form-data with a 'file' part and a 'reference' field "
                       "(curl -F file=@samples.npy -F reference=ring8 ...)", "unsupported-format")
    upload = request.files.get("file")
    name = request.form.get("reference") or request.args.get("reference")
    if upload is None or not name:
        raise ApiError(400, "both the 'file' part and the 'reference' field are required",
                       "missing-field")
    reference = ready_entry(name, "reference")
    batch = parse_batch(upload.read(), upload.filename, upload.mimetype, upload_limits(),
                        request.form.get("key"))
    started = time.perf_counter()
    try:
        report = guard().run(diagnose, batch, reference.card["reference"], name)
    except DiagnosticsError as error:
        raise ApiError(422, str(error), "unusable-samples") from None
    metrics.DIAGNOSTICS_SECONDS.labels(reference=name).observe(time.perf_counter() - started)
    return report
