"""The Flask application factory: `create_app(config)` runs named steps in order.

gunicorn calls `create_app()` inside each worker (preload_app is off), so onnxruntime sessions
are created after the fork, one set per worker.
"""

import logging
import sys

from flask import Flask

from lab.diagnostics.reference_passes import REFERENCE_PASSES
from service import logs, metrics
from service.api import register_blueprints
from service.batching import Batchers, BatchSettings
from service.compression import register_compression
from service.config import ServiceConfig
from service.cors import register_cors
from service.errors import register_error_handlers
from service.guard import Guard
from service.job_runner import JobRunner
from service.jobs import JobLimits, JobStore
from service.middleware import register_request_hooks
from service.references import ReferenceStore
from service.repository import Repository

log = logging.getLogger(__name__)


def create_app(config: ServiceConfig | None = None) -> Flask:
    """A ready-to-serve app; `config` defaults to `ServiceConfig.from_env()`."""
    config = (config or ServiceConfig.from_env()).validated()
    app = Flask(__name__, static_folder=None)
    app.config["SERVICE"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes
    app.json.sort_keys = False
    configure_logging(config.log_level, config.log_format)
    register_request_hooks(app)
    register_cors(app)
    register_compression(app)
    register_blueprints(app)
    register_error_handlers(app)
    load_models(app, config)
    guard = Guard(config.max_in_flight, config.request_deadline)
    app.extensions["guard"] = guard
    app.extensions["batchers"] = batchers(config, guard)
    app.extensions["references"] = ReferenceStore(
        config.data_dir, config.max_references, config.max_reference_bytes
    )
    start_jobs(app, config)
    keep_reference_passes(config)
    entries = app.extensions["repository"].entries.values()
    ready = sum(entry.ready for entry in entries)
    log.info("app created: %d of %d models ready", ready, len(entries))
    return app


def keep_reference_passes(config: ServiceConfig) -> None:
    """The process's memo of references' own passes: its size, and its lookups counted."""
    REFERENCE_PASSES.entries = config.reference_pass_entries
    REFERENCE_PASSES.observer = lambda part, kept: metrics.REFERENCE_PASS_LOOKUPS.labels(
        part, "found" if kept else "missing"
    ).inc()


def batchers(config: ServiceConfig, guard: Guard) -> Batchers | None:
    """This worker's dynamic batch queues (service/batching.py); None when BATCHING is off."""
    if config.batching == "off":
        return None
    settings = BatchSettings(
        config.batch_window_us / 1e6,
        config.batch_max_rows,
        config.batch_queue,
        config.batch_large_queue,
    )
    return Batchers(settings, guard)


def start_jobs(app: Flask, config: ServiceConfig) -> None:
    """The job store on DATA_DIR (shared by every worker) and this worker's job threads."""
    limits = JobLimits(config.max_jobs, config.max_job_bytes, config.job_ttl)
    store = JobStore(config.data_dir, limits)
    app.extensions["jobs"] = store
    app.extensions["job_runner"] = JobRunner(store, config.job_workers, config.job_nice)


def configure_logging(level: str, log_format: str = "text") -> None:
    """One line per record on stdout, for container log collectors: the service's records and
    the core's (lab.runtime's CPU-fallback warning), with time and worker pid, as text or JSON
    (LOG_FORMAT, service/logs.py)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logs.formatter(log_format))
    for name in ("service", "lab"):
        root = logging.getLogger(name)
        root.handlers[:] = [handler]
        root.setLevel(level.upper())
        root.propagate = False


def load_models(app: Flask, config: ServiceConfig) -> None:
    """Read the model repository; broken entries are kept as not ready, never fatal."""
    repository = Repository(config.model_repository, config.device, config.fp16).load()
    for entry in repository.entries.values():
        if entry.provider:
            metrics.MODEL_PROVIDER.labels(model=entry.name, provider=entry.provider).set(1)
    app.extensions["repository"] = repository
