"""Jobs: a samples, diagnose or diagnostics request sent with `Prefer: respond-async` (RFC 7240)
is validated as usual, then answered 202 with `Location: /v1/jobs/<id>` and runs in the
background (service/job_runner.py); its status, result and cancellation are here."""

import time

from flask import Blueprint, Response, current_app, jsonify, send_file
from flask import request as http_request

from service import metrics
from service.api.requests import job_store
from service.errors import PROBLEM_MIME, ApiError
from service.job_runner import Work
from service.jobs import CANCELLED, FAILED, FINISHED, SUCCEEDED, iso, parse_iso

blueprint = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
RESPOND_ASYNC = "respond-async"
MAX_RETRY_AFTER_S = 60  # the longest Retry-After while a job runs


def prefers_async() -> bool:
    """Whether the request's Prefer header(s) hold the preference respond-async (RFC 7240:
    comma-separated preferences, each `token[=value][; parameters]`, case-insensitive)."""
    for header in http_request.headers.getlist("Prefer"):
        for preference in header.split(","):
            token = preference.split(";")[0].split("=")[0].strip().lower()
            if token == RESPOND_ASYNC:
                return True
    return False


def accept_job(
    work: Work, estimated_bytes: int, media_type: str, body: dict, inputs: dict | None = None
) -> Response:
    """Store a queued job for this request (its route, body and the negotiated media type of
    the result; `inputs`: arrays saved beside it), run `work` on this worker's job threads, and
    answer 202 with its status, `Location` and `Preference-Applied`. 429/413 when the jobs are
    full (service/jobs.py, check_room)."""
    record = {
        "method": http_request.method,
        "path": http_request.path,
        "media_type": media_type,
        "body": body,
    }
    job = job_store().create(record, estimated_bytes, inputs or {})
    app = current_app._get_current_object()  # the real app, for the job thread's app context
    app.extensions["job_runner"].submit(job["id"], work, app)
    metrics.JOBS_SUBMITTED.labels(route=http_request.url_rule.rule).inc()
    response = jsonify(status(job))
    response.status_code = 202
    response.headers.update(
        {
            "Location": link(job),
            "Preference-Applied": RESPOND_ASYNC,
            "Retry-After": "1",
        }
    )
    return response


def link(job: dict) -> str:
    return f"/v1/jobs/{job['id']}"


def status(job: dict) -> dict:
    """The public view of a job: no owner, no byte estimate; links to itself and its result."""
    result = job["result"]
    return {
        "id": job["id"],
        "state": job["state"],
        "created": job["created"],
        "started": job["started"],
        "finished": job["finished"],
        "expires": job["expires"],
        "progress": job["progress"],
        "cancel_requested": job.get("cancel_requested", False),
        "request": job["request"],
        "error": job["error"],
        "result": result and {"media_type": result["media_type"], "bytes": result["bytes"]},
        "links": {"self": link(job), "result": f"{link(job)}/result"},
    }


def known_job(job_id: str) -> dict:
    """The stored job; 410 when it expired (within the last JOB_TTL), else 404 when absent."""
    job = job_store().read(job_id)
    if job is not None:
        return job
    ttl = current_app.config["SERVICE"].job_ttl
    expired = job_store().expired_at(job_id)
    if expired is not None:
        raise ApiError(
            410,
            f"job {job_id} expired at {iso(expired)} (finished jobs are kept {ttl:g} s, "
            "JOB_TTL); submit its request again",
            "job-expired",
        )
    raise ApiError(
        404,
        f"no job {job_id!r}: never submitted, deleted, or expired (finished jobs are kept "
        f"{ttl:g} s, JOB_TTL)",
        "unknown-job",
    )


@blueprint.get("")
def list_jobs() -> dict:
    """Every stored job (at most MAX_JOBS), newest first."""
    return {"jobs": [status(job) for job in job_store().jobs()]}


@blueprint.get("/<job_id>")
def get_job(job_id: str) -> dict:
    return status(known_job(job_id))


@blueprint.get("/<job_id>/result")
def job_result(job_id: str) -> Response:
    """The answer the synchronous request would have given: the result file (in the format
    asked at submission) or, for a failed job, its problem; 409 while unfinished or cancelled."""
    job = known_job(job_id)
    if job["state"] == SUCCEEDED:
        result = job["result"]
        response = send_file(job_store().result_path(job), result["media_type"], max_age=0)
        response.headers.update(result["headers"])
        return response
    if job["state"] == FAILED:
        error = job["error"]
        return Response(jsonify(error).get_data(), error["status"], mimetype=PROBLEM_MIME)
    if job["state"] == CANCELLED:
        raise ApiError(409, f"job {job_id} was cancelled: it has no result", "job-cancelled")
    raise ApiError(
        409,
        f"job {job_id} is {job['state']} ({job['progress']['fraction']:.0%} done); "
        f"poll {link(job)} until its state is succeeded",
        "job-not-finished",
        headers={"Retry-After": str(retry_after(job))},
    )


def retry_after(job: dict) -> int:
    """Seconds worth waiting: the time left at the rate so far, 1 to MAX_RETRY_AFTER_S."""
    fraction = job["progress"]["fraction"]
    if not job["started"] or not fraction:
        return 1
    elapsed = time.time() - parse_iso(job["started"])
    return int(min(MAX_RETRY_AFTER_S, max(1, elapsed * (1 - fraction) / fraction)))


@blueprint.delete("/<job_id>")
def delete_job(job_id: str) -> Response:
    """A finished job is deleted (204); a queued or running one is asked to stop (202: it stops
    at its next progress checkpoint and becomes cancelled, to be deleted then)."""
    job = known_job(job_id)
    if job["state"] in FINISHED:
        job_store().delete(job_id)
        return Response(status=204)
    job_store().request_cancel(job_id)
    response = jsonify(status(job | {"cancel_requested": True}))
    response.status_code = 202
    return response
