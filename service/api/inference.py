"""Model inference under the concurrency guard (service/guard.py), with the inference metrics:
a run of a model version's session on named inputs (/v2, and a gan's latents for /v1), merged
with concurrent requests' by dynamic batching when it takes them (service/batching.py), or any
prepared work on one version (a score model's samples); an onnxruntime failure becomes a 503
problem with Retry-After.
"""

import logging
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from flask import current_app

from lab import runtime
from service import metrics
from service.api.requests import service_config
from service.batching import Batcher, Batchers
from service.errors import ApiError
from service.guard import Guard
from service.repository import Entry, Version

log = logging.getLogger(__name__)


def guard() -> Guard:
    return current_app.extensions["guard"]


def batchers() -> Batchers | None:
    """This worker's batch queues; None when BATCHING is off."""
    return current_app.extensions["batchers"]


def run_inputs(
    entry: Entry, version: Version, inputs: dict[str, np.ndarray], session: object = None
) -> np.ndarray:
    """The first output [n, ...] of one pass of `session` (the version's own when None) over
    named inputs sharing a batch [n, ...], with metrics: through the batch queue when batching
    takes it (BATCHING on; merged with concurrent requests' when n <= BATCH_MAX_ROWS, a run of
    its own in its turn up to MAX_BATCH), else on its own under the concurrency guard (split at
    MAX_BATCH)."""
    session = version.session if session is None else session
    max_batch = service_config().max_batch
    rows = len(next(iter(inputs.values())))
    run = partial(runtime.run_rows, session, max_batch=max_batch)
    queues = batchers()
    if queues is not None and queues.takes(rows, max_batch):
        batcher = queues.get(session, inputs, run, entry.name, version.number)
        return batched_inference(entry, version, rows, batcher, inputs)
    return guarded_inference(entry, version, rows, partial(run, inputs), bounded=rows <= max_batch)


def batched_inference(
    entry: Entry, version: Version, rows: int, batcher: Batcher, inputs: dict[str, np.ndarray]
) -> np.ndarray:
    """The output rows of `inputs` [rows, ...] from the batch they are merged into; failures
    and metrics as guarded_inference (the compute time counted is the batch's run)."""
    ticket = batcher.submit(inputs)
    if ticket.error is not None:
        raise failure(entry, version, ticket.error) from None
    metrics.observe_inference(entry.name, version.number, rows, ticket.compute_s, executions=0)
    return ticket.output


def guarded_inference(
    entry: Entry, version: Version, rows: int, work: Callable[[], np.ndarray], bounded: bool
) -> np.ndarray:
    """work() under the guard (bounded: short, run in the request's thread; else on the pool,
    under the deadline); onnxruntime failures become 503 problems; the inference metrics count
    `rows` samples."""
    started = time.perf_counter()
    try:
        samples = guard().run(work, bounded=bounded)
    except Exception as error:
        raise failure(entry, version, error) from None
    metrics.observe_inference(entry.name, version.number, rows, time.perf_counter() - started)
    return samples


def failure(entry: Entry, version: Version, error: BaseException) -> BaseException:
    """What a failed inference raises, counted: a 503 problem with Retry-After for an
    onnxruntime failure (logged), the error itself otherwise (a 503 or 504 of the guard)."""
    name, number = entry.name, version.number
    metrics.INFERENCE_FAILURE.labels(model=name, version=str(number)).inc()
    if not isinstance(error, runtime.InferenceFailed):
        return error
    log.error("%s v%d: inference failed: %s", name, number, error)
    return ApiError(
        503,
        f"inference failed on the server ({error}); retry shortly",
        "inference-failed",
        headers={"Retry-After": "1"},
    )
