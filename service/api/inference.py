"""Model inference under the concurrency guard (service/guard.py), with the inference metrics:
a run of a model version's session on named inputs (/v2), or any prepared work on one version
(the samples of /v1); an onnxruntime failure becomes a 503 problem with Retry-After.
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
from service.errors import ApiError
from service.guard import Guard
from service.repository import Entry, Version

log = logging.getLogger(__name__)


def guard() -> Guard:
    return current_app.extensions["guard"]


def run_inputs(entry: Entry, version: Version, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """One pass of the version's session over named inputs sharing a batch [n, ...] (split at
    MAX_BATCH) under the concurrency guard, with metrics; its first output [n, ...]."""
    max_batch = service_config().max_batch
    rows = len(next(iter(inputs.values())))
    work = partial(runtime.run_rows, version.session, inputs, max_batch)
    return guarded_inference(entry, version, rows, work, bounded=rows <= max_batch)


def guarded_inference(
    entry: Entry, version: Version, rows: int, work: Callable[[], np.ndarray], bounded: bool
) -> np.ndarray:
    """work() under the guard (bounded: short, run in the request's thread; else on the pool,
    under the deadline); onnxruntime failures become 503 problems; the inference metrics count
    `rows` samples."""
    name, number = entry.name, version.number
    started = time.perf_counter()
    try:
        samples = guard().run(work, bounded=bounded)
    except runtime.InferenceFailed as error:
        metrics.INFERENCE_FAILURE.labels(model=name, version=str(number)).inc()
        log.error("%s v%d: inference failed: %s", name, number, error)
        raise ApiError(
            503,
            f"inference failed on the server ({error}); retry shortly",
            "inference-failed",
            headers={"Retry-After": "1"},
        ) from None
    except Exception:
        metrics.INFERENCE_FAILURE.labels(model=name, version=str(number)).inc()
        raise
    metrics.observe_inference(name, number, rows, time.perf_counter() - started)
    return samples
