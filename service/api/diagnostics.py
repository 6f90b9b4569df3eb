"""Diagnose an uploaded batch of samples against a reference."""

import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import numpy as np
from flask import Blueprint, Response, jsonify

from lab.diagnostics import diagnose
from lab.diagnostics.classes import Classes
from lab.diagnostics.members import Members
from lab.diagnostics.report import validate_samples
from lab.sampling import Progress
from service import metrics
from service.api.inference import guard
from service.api.jobs import accept_job, prefers_async
from service.api.requests import (
    Reference,
    form_value,
    job_store,
    negotiate,
    read_batch,
    require_upload,
    resolve_reference,
    to_value_range,
)
from service.figures import render_report
from service.job_runner import JobResult

REPORT_FORMATS = ("application/json", "image/png")
REPORT_BYTES = 4 * 2**20  # a report job's reservation on disk: its JSON or figure is smaller
T = TypeVar("T")


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
    if prefers_async():  # the batch is kept in the job's folder until the job runs
        rows = batch.reshape(batch.shape[0], int(np.prod(batch.shape[1:])))
        validate_samples(rows, rows.shape[1])  # NaN, Inf, no rows: 422 now, not in the job
        body = {"reference": name, "file": upload.filename, "key": form_value("key")}
        work = partial(diagnostics_job, name, media_type)
        return accept_job(work, REPORT_BYTES, media_type, body, {"batch": batch})
    return diagnosis_response(batch, reference, media_type)


def diagnostics_job(
    name: str | None, media_type: str, job_id: str, progress: Progress
) -> JobResult:
    """A diagnostics job's result: the report or figure of its stored batch; progress 0 of 1
    until the report is done."""
    progress(0, 1)
    batch = job_store().input(job_id, "batch")
    reference = resolve_reference(name) if name else None
    response = diagnosis_response(batch, reference, media_type, run=unguarded)
    progress(1, 1)
    return JobResult(response.get_data(), media_type, {})


def unguarded(work: Callable[..., T], *args: object) -> T:
    """work(*args) in the calling thread: a job's way to run what a request runs under the
    guard (no slot, no deadline)."""
    return work(*args)


def diagnose_with(
    batch: np.ndarray,
    reference: Reference | None,
    members: Members | None = None,
    classes: Classes | None = None,
) -> dict:
    """The report; for a classifier reference the classifier runs on the batch first, for a
    features reference naming an embedding model that model does (its features are then
    compared as raw vectors). members: an ensemble's (the report's `ensemble` section);
    classes: a conditional model's labels (the `classes` section)."""
    if reference is None:
        return diagnose(batch, None, None)
    classified, spec = None, reference.spec
    if reference.classifier is not None:
        classified = reference.classify(batch)
    elif reference.embedder is not None:
        batch = reference.embed(batch)
        spec = {**spec, "embedding": "raw", "sample_shape": [batch.shape[1]]}
    features, modes = reference.features, reference.modes
    return diagnose(batch, spec, reference.name, features, classified, modes, members, classes)


def diagnosis_response(
    batch: np.ndarray,
    reference: Reference | None,
    media_type: str,
    extra: dict | None = None,
    run: Callable | None = None,
    members: Members | None = None,
    classes: Classes | None = None,
) -> Response:
    """Diagnose under the guard (or by `run`: unguarded in a job); answer the report as JSON or
    as its figure. members: which ensemble member drew each sample, for an ensemble's batch;
    classes: which class each sample was drawn for, for a conditional model's."""
    run = run or guard().run
    name = reference.name if reference else "none"
    started = time.perf_counter()
    report = run(diagnose_with, batch, reference, members, classes)
    metrics.DIAGNOSTICS_SECONDS.labels(reference=name).observe(time.perf_counter() - started)
    if media_type == "image/png":
        spec = reference.spec if reference else None
        features = reference.features if reference else None
        exemplars = reference.exemplars if reference else None
        png = run(render_report, report, batch, spec, features, exemplars, extra)
        return Response(png, mimetype="image/png")
    return jsonify({**(extra or {}), **report})
