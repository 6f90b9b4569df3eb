"""Running jobs (service/jobs.py) inside a gunicorn worker, beside the requests it serves.

Each worker has a pool of JOB_WORKERS threads (default 1) for the jobs it accepted. They take
no slot of the request guard (MAX_IN_FLIGHT) and have no deadline; they share the CPU with
the synchronous path as follows: every onnxruntime run uses ORT_INTRA_OP_THREADS threads
(default 1, in the calling thread), so a worker's jobs use at most JOB_WORKERS cores, and the
job threads run at the lower priority JOB_NICE (Linux nice values are per thread), so the
scheduler gives a core to a synchronous request first when both want it.

A job reports progress after each onnxruntime run (lab.sampling.Progress): the runner writes
it to job.json (at most every PROGRESS_WRITE_S seconds) and, at the same checkpoint, stops the
job when a cancel was asked (by any worker: a file in the job's folder) or the worker is
stopping (gunicorn's worker_exit hook calls stop_all).
"""

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import Flask

from lab import runtime
from lab.diagnostics import DiagnosticsError
from lab.sampling import Progress
from service import metrics
from service.errors import ApiError, problem_body
from service.jobs import CANCELLED, FAILED, RUNNING, JobStore, iso, now

log = logging.getLogger(__name__)
PROGRESS_WRITE_S = 0.5  # seconds between progress writes to job.json (the last is always written)
_RUNNERS: "weakref.WeakSet[JobRunner]" = weakref.WeakSet()


@dataclass(frozen=True)
class JobResult:
    """What a job answers: the body, its media type and the headers the synchronous answer has."""

    data: bytes
    media_type: str
    headers: dict[str, str]


# work(job id, progress) -> the result; run in an app context of the app that accepted it
Work = Callable[[str, Progress], JobResult]


class JobStopped(Exception):
    """Raised at a progress checkpoint: the job was cancelled, or its worker is stopping."""


def lower_priority(nice: int) -> None:
    """Give this thread the nice value `nice`, or keep its own when that is higher already
    (Linux: per thread; an unprivileged process may raise its nice value, never lower it)."""
    try:
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(current, nice))
    except (AttributeError, OSError):  # not supported: run at the process's priority
        log.warning("could not lower the job threads' priority (JOB_NICE=%d)", nice)


class JobRunner:
    """Runs this worker's jobs on `workers` threads at nice value `nice`."""

    def __init__(self, store: JobStore, workers: int, nice: int) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="job", initializer=lower_priority, initargs=(nice,)
        )
        self._stopping = threading.Event()
        self._queued: set[str] = set()
        _RUNNERS.add(self)

    def submit(self, job_id: str, work: Work, app: Flask) -> None:
        """Queue `work` for the job `job_id` (created queued by this process)."""
        self._queued.add(job_id)
        self._pool.submit(self._run, job_id, work, app)

    def stop(self) -> None:
        """Stop at the next checkpoint; jobs not yet started are marked failed."""
        self._stopping.set()
        for job_id in list(self._queued):
            self._fail(job_id, stopped_problem())
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job_id: str, work: Work, app: Flask) -> None:
        self._queued.discard(job_id)
        try:
            self.checkpoint(job_id)  # cancelled or stopping while queued: never starts
            self.store.update(job_id, state=RUNNING, started=iso(now()))
            with app.app_context():
                result = work(job_id, self.progress_writer(job_id))
            self.checkpoint(job_id)
            self.store.write_result(job_id, result.data, result.media_type, result.headers)
            metrics.JOBS_FINISHED.labels(state="succeeded").inc()
        except JobStopped:
            if self._stopping.is_set():
                self._fail(job_id, stopped_problem())
            else:
                self._finish(job_id, CANCELLED)
        except FileNotFoundError as error:
            if self.store.folder(job_id).exists():
                self._fail(job_id, failure_problem(error))
            else:  # deleted meanwhile (marked lost, then deleted): nothing to record
                log.warning("job %s vanished while running", job_id)
        except BaseException as error:  # noqa: BLE001 - every failure becomes the job's error
            self._fail(job_id, failure_problem(error))

    def checkpoint(self, job_id: str) -> None:
        """JobStopped when the job was cancelled or this worker is stopping."""
        if self._stopping.is_set() or self.store.cancel_requested(job_id):
            raise JobStopped

    def progress_writer(self, job_id: str) -> Progress:
        """progress(done, total): a checkpoint, and job.json's progress now and then."""
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            if done in (0, total) or time.monotonic() - last >= PROGRESS_WRITE_S:
                last = time.monotonic()
                fraction = round(done / total, 4) if total else 1.0
                progress = {"done": done, "total": total, "fraction": fraction}
                self.store.update(job_id, progress=progress)
            self.checkpoint(job_id)

        return progress

    def _finish(self, job_id: str, state: str, **changes: object) -> None:
        try:
            self.store.finish(job_id, state, **changes)
            metrics.JOBS_FINISHED.labels(state=state).inc()
        except FileNotFoundError:
            pass

    def _fail(self, job_id: str, error: dict) -> None:
        self._queued.discard(job_id)
        self._finish(job_id, FAILED, error=error)


def failure_problem(error: BaseException) -> dict:
    """The job's `error`: what the synchronous request would have answered."""
    if isinstance(error, ApiError):
        return problem_body(error)
    if isinstance(error, DiagnosticsError):  # as the app's handler answers it
        return problem_body(ApiError(422, str(error), "unusable-samples"))
    if isinstance(error, runtime.InferenceFailed):
        detail = f"inference failed on the server ({error}); submit the job again"
        return problem_body(ApiError(503, detail, "inference-failed"))
    log.error("job failed", exc_info=error)
    return problem_body(ApiError(500, "internal error; see the service log", "internal"))


def stopped_problem() -> dict:
    detail = "the worker running this job stopped (a restart or shutdown); submit it again"
    return problem_body(ApiError(503, detail, "job-lost"))


def stop_all() -> None:
    """Stop every runner of this process (gunicorn's worker_exit hook)."""
    for runner in list(_RUNNERS):
        runner.stop()
