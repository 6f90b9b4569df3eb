"""Prometheus metrics, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (service/gunicorn.conf.py sets it before the workers fork),
each worker writes its samples to files there and /metrics aggregates them; without it (tests,
`flask run`) the process-local registry is used. Names follow Triton's `nv_inference_*` where
the meaning is the same.
"""

import os
from functools import lru_cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase

# Seconds a request waits in a batch queue: a merged run of small requests takes about 1 ms.
QUEUE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "Guarded (heavy) requests being computed.",
    multiprocess_mode="livesum",
)
GUARD_REJECTIONS = Counter(
    "http_requests_rejected_busy_total",
    "Requests refused with 503 because MAX_IN_FLIGHT were running (or BATCH_QUEUE waiting).",
)
DEADLINE_EXCEEDED = Counter(
    "http_requests_deadline_exceeded_total",
    "Requests answered 504 because they passed REQUEST_DEADLINE.",
)


def triton_counter(name: str, documentation: str) -> Gauge:
    """A cumulative value under Triton's exact name, by model and version.

    Triton exposes these without the `_total` suffix that prometheus_client adds to every
    Counter, so they are gauges that only grow, summed over all workers.
    """
    return Gauge(
        name, f"{documentation} (Triton's name).", ["model", "version"], multiprocess_mode="sum"
    )


INFERENCE_SUCCESS = triton_counter("nv_inference_request_success", "Successful inference requests")
INFERENCE_FAILURE = triton_counter("nv_inference_request_failure", "Failed inference requests")
INFERENCE_COUNT = triton_counter("nv_inference_count", "Samples generated, i.e. inferences")
INFERENCE_DURATION_US = triton_counter(
    "nv_inference_compute_infer_duration_us", "Cumulative compute time of inference, microseconds"
)
INFERENCE_EXEC_COUNT = triton_counter(
    "nv_inference_exec_count", "Model executions: one per request, or per merged batch"
)
INFERENCE_QUEUE_US = triton_counter(
    "nv_inference_queue_duration_us", "Cumulative time requests waited in the batch queue, us"
)
BATCH_REQUESTS = Histogram(
    "inference_batch_requests",
    "Requests merged into one onnxruntime run by dynamic batching (BATCHING).",
    ["model"],
    buckets=BATCH_BUCKETS,
)
BATCH_QUEUE_SECONDS = Histogram(
    "inference_queue_duration_seconds",
    "Time a request waited in the batch queue before its merged run started.",
    ["model"],
    buckets=QUEUE_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "inference_duration_seconds", "Generation time per request.", ["model"], buckets=LATENCY_BUCKETS
)
DIAGNOSTICS_SECONDS = Histogram(
    "diagnostics_duration_seconds",
    "Time to compute one diagnostics report.",
    ["reference"],
    buckets=LATENCY_BUCKETS,
)
REFERENCE_PASS_LOOKUPS = Counter(
    "diagnostics_reference_pass_lookups_total",
    "A reference's own k-NN sweep or K-means looked up: kept (found) or computed (missing).",
    ["part", "result"],
)
JOBS_SUBMITTED = Counter("jobs_submitted_total", "Jobs accepted (202).", ["route"])
JOBS_FINISHED = Counter("jobs_finished_total", "Jobs finished, by final state.", ["state"])
MODEL_PROVIDER = Gauge(
    "model_execution_provider",
    "1 for the onnxruntime execution provider each model runs on.",
    ["model", "provider"],
    multiprocess_mode="max",
)


def exposition(jobs_by_state: dict[str, int] | None = None) -> tuple[bytes, str]:
    """(body, content type) of the /metrics page, aggregated over workers when multiprocess;
    with `jobs_by_state`, the gauge `jobs` of the jobs stored by state (read from the shared
    disk at scrape time, so the answering worker counts every worker's jobs once)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if jobs_by_state is not None:
        jobs = CollectorRegistry()
        jobs.register(JobsCollector(jobs_by_state))
        body += generate_latest(jobs)
    return body, CONTENT_TYPE_LATEST


class JobsCollector:
    """The `jobs` gauge from counts by state (no Gauge object: in multiprocess mode one would
    write its value to this worker's files, to be summed with the other workers')."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("jobs", "Jobs stored, by state.", labels=["state"])
        for state, count in self.counts.items():
            family.add_metric([state], count)
        return [family]


@lru_cache(maxsize=4096)
def child(metric: MetricWrapperBase, *values: str) -> MetricWrapperBase:
    """metric.labels(*values) (values in the order of its label names), made once: labels()
    checks and locks on every call, a few microseconds on each of a request's updates."""
    return metric.labels(*values)


def observe_inference(
    model: str, version: int, samples: int, seconds: float, executions: int = 1
) -> None:
    """A successful inference request of `samples` rows that computed for `seconds` in
    `executions` runs of its own (0: a merged batch's run, which its batcher counts)."""
    number = str(version)
    child(INFERENCE_SUCCESS, model, number).inc()
    if executions:
        child(INFERENCE_EXEC_COUNT, model, number).inc(executions)
    child(INFERENCE_COUNT, model, number).inc(samples)
    child(INFERENCE_DURATION_US, model, number).inc(seconds * 1e6)
    child(INFERENCE_SECONDS, model).observe(seconds)
