"""gunicorn settings for the service. Every value can be overridden from the environment.

Run from the repository root: `gunicorn -c service/gunicorn.conf.py`.
"""

import math
import os
import shutil
import tempfile
from pathlib import Path

# The app factory, called in each worker after the fork: onnxruntime sessions (and CUDA
# contexts) must never be created in the master and inherited across fork().
wsgi_app = "service.app:create_app()"
preload_app = False

# HOST:PORT to listen on; 0.0.0.0 inside a container, `make serve` passes HOST=127.0.0.1.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"


def usable_cpus() -> int:
    """The cores this process may run on (its affinity), capped by a cgroup v2 CPU quota (a
    container's CPU limit: /sys/fs/cgroup/cpu.max), at least 1."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else max(1, min(cores, math.ceil(int(quota) / int(period))))


def gpu_host() -> bool:
    """An NVIDIA device node is present and DEVICE allows CUDA: decided without loading CUDA,
    which must never be initialised in the master."""
    return os.environ.get("DEVICE", "auto") != "cpu" and any(Path("/dev").glob("nvidia[0-9]*"))


# gthread: one process holds the sessions and its threads share them (onnxruntime's run() is
# thread-safe and releases the GIL). WEB_CONCURRENCY's default: one worker on a GPU host (its
# threads share the device's sessions and memory; dynamic batching merges their requests), one
# per usable core on a CPU-only host, since one process's threads contend for one GIL: on 2 cores
# one worker left about a third of the small-request throughput unused (docs/performance.md).
# Threads exceed MAX_IN_FLIGHT (service/config.py, default 4) so that cheap requests (health,
# metrics, listings) are still answered, and a heavy request beyond the limit gets a fast 503.
worker_class = "service.worker.BalancedThreadWorker"  # gthread, connections spread (its docstring)
workers = int(os.environ.get("WEB_CONCURRENCY", "") or (1 if gpu_host() else usable_cpus()))
threads = int(os.environ.get("THREADS", "8"))

# Seconds a worker may stay silent before the master replaces it; generation of the largest
# allowed batch and diagnostics of the largest upload finish well within it.
timeout = int(os.environ.get("TIMEOUT", "120"))

# Seconds in-flight requests get to finish after SIGTERM before workers are killed.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))

# Seconds an idle keep-alive connection stays open (behind a load balancer, keep it short).
keepalive = int(os.environ.get("KEEPALIVE", "5"))

# Access and error logs to stdout/stderr, one line per request, for the container runtime.
# ACCESS_LOG: "-" (stdout, the default), a file, or "off" (no line is formatted or written:
# under load the access log took about a tenth of a worker's time, bench/load.py).
access_log = os.environ.get("ACCESS_LOG", "-")
accesslog = None if access_log == "off" else access_log
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# One line per request: client, request line, status, bytes, milliseconds, request id.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'

# LOG_FORMAT: "text" (the lines above) or "json": gunicorn's own records and the access line
# become one JSON object per line like the app's (service/logs.py), the access line with method,
# path, status, duration_ms, bytes, request_id and, for a traced request, trace_id.
if os.environ.get("LOG_FORMAT", "text") == "json":
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        def setup(self, cfg) -> None:
            from service.logs import JsonFormatter

            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    logger_class = JsonLogger

# Reject absurd request lines and header blocks before Flask sees them.
limit_request_line = 8190
limit_request_fields = 100

# No control socket (gunicorn >= 25.1's interface for `gunicornc`, which nothing here uses): its
# default path, $HOME/.gunicorn/gunicorn.ctl, is read-only in the image (an ERROR line at every
# start, tests/deploy/test_image.py) and shared by every gunicorn of one user elsewhere.
control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its metrics to files in this folder and
# /metrics aggregates them. Set here, in the master, so that workers inherit it before they
# import prometheus_client; emptied at start so that no stale worker files are counted.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="collapse-lab-metrics-"))


def on_starting(server) -> None:
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def pre_fork(server, worker) -> None:
    from service.worker import claim_slot

    worker.slot = claim_slot()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    from service.worker import release_slot

    release_slot(worker.slot)
    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    """A stopping worker (graceful shutdown, restart, max requests) stops its jobs at their next
    progress checkpoint and marks them failed (`/problems/job-lost`), so that it exits within
    GRACEFUL_TIMEOUT; finished results stay on DATA_DIR."""
    from service.job_runner import stop_all

    stop_all()
