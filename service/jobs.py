"""Jobs on disk: work longer than a request's deadline, stored under `<DATA_DIR>/jobs/<id>/`.

Each job is a folder holding `job.json` (its state, times, progress, the request, the error
or the result's name and media type, its owner) and, once it succeeded, the result file; a
job on an uploaded batch also holds the batch as `input-batch.npy`. Every file is written to
a temporary name and renamed into place, so a reader on any worker sees a whole file or none,
and a job folder appears whole (built as `.staging-*`, then renamed). Finished results are on
disk, so a worker restart loses none.

A job runs in the worker that accepted it (service/job_runner.py). Its owner (host and pid)
is in job.json and every owner touches `.workers/<host>-<pid>` every HEARTBEAT_S seconds
(one file per worker, not one write per job). A queued or running job whose owner is gone
(the same host and no such process, or no heartbeat for STALE_S seconds: another host) is
marked failed when it is next read: it is not re-run, since its request is in job.json and the
client decides whether to submit it again.
"""

import json
import os
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from service.errors import ApiError, problem_body
from service.folders import remove_folder, staged_folder

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
JOB_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
HEARTBEAT_S = 5.0  # seconds between a worker's heartbeats
STALE_S = 30.0  # a worker silent this long (on another host) is gone
JOB_FILE, CANCEL_FILE = "job.json", "cancel"
RESULT_FILES = {"application/json": "result.json", "application/x-npy": "result.npy"}
RESULT_FILES |= {"image/png": "result.png"}


def now() -> float:
    return time.time()


def iso(seconds: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC (None stays None)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def owner_id() -> dict:
    """This process as a job owner: its host name and pid."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True)
class JobLimits:
    """MAX_JOBS stored at once, MAX_JOB_BYTES on disk together, JOB_TTL seconds kept after
    finishing."""

    max_jobs: int
    max_bytes: int
    ttl_s: float


class Heartbeat:
    """This process's heartbeat file under the jobs folder, touched every HEARTBEAT_S seconds
    by one daemon thread, started on the first job this process owns."""

    _lock = threading.Lock()
    _started: set[tuple[int, Path]] = set()

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def file_of(folder: Path, owner: dict) -> Path:
        return folder / f"{owner['host']}-{owner['pid']}"

    def ensure(self) -> None:
        """Touch now; start the thread once per process and folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.file_of(self.folder, owner_id())
        path.touch()
        with self._lock:
            key = (os.getpid(), self.folder)
            if key in self._started:
                return
            self._started.add(key)
        threading.Thread(target=self._beat, args=(path,), daemon=True, name="job-heartbeat").start()

    def _beat(self, path: Path) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            try:
                path.touch()
            except OSError:  # the volume went away for a moment; the next beat retries
                pass

    def alive(self, owner: dict) -> bool:
        """Whether the owner process may still run its jobs."""
        if owner == owner_id():
            return True
        if owner.get("host") == socket.gethostname() and not pid_exists(int(owner["pid"])):
            return False
        try:
            return now() - self.file_of(self.folder, owner).stat().st_mtime < STALE_S
        except OSError:
            return False


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def folder_bytes(folder: Path) -> int:
    try:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    except OSError:  # removed meanwhile
        return 0


class JobStore:
    """The jobs of every worker, on disk: create, read, update, list, cancel, delete."""

    def __init__(self, data_dir: Path, limits: JobLimits) -> None:
        self.root = data_dir / "jobs"
        self.limits = limits
        self.heartbeat = Heartbeat(self.root / ".workers")
        self.tombstones = self.root / ".expired"  # <id>: a job that expired, for JOB_TTL more
        self._lock = threading.Lock()  # one read-modify-write of a job.json at a time

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, request: dict, estimated_bytes: int, inputs: dict[str, np.ndarray]) -> dict:
        """A queued job owned by this process, with its inputs (saved as input-<name>.npy);
        429 when MAX_JOBS are stored or it would take the jobs past MAX_JOB_BYTES (check_room)."""
        needed = estimated_bytes + sum(a.nbytes for a in inputs.values())
        self.check_room(needed)
        self.heartbeat.ensure()
        job_id = secrets.token_urlsafe(16)
        job = {
            "id": job_id,
            "state": QUEUED,
            "created": iso(now()),
            "started": None,
            "finished": None,
            "expires": None,
            "progress": {"done": 0, "total": None, "fraction": 0.0},
            "request": request,
            "error": None,
            "result": None,
            "owner": owner_id(),
            "estimated_bytes": needed,
        }
        with staged_folder(self.root, self.folder(job_id)) as staging:
            for name, array in inputs.items():
                np.save(staging / f"input-{name}.npy", array, allow_pickle=False)
            (staging / JOB_FILE).write_text(json.dumps(job))
        return job

    def read(self, job_id: str) -> dict | None:
        """The job (None when unknown or expired, which removes it); a queued or running job
        whose owner is gone is marked failed first."""
        if not JOB_ID.fullmatch(job_id):
            return None
        try:
            job = json.loads((self.folder(job_id) / JOB_FILE).read_text())
        except (OSError, ValueError):  # absent, or deleted meanwhile
            return None
        if job["state"] in FINISHED:
            if job["expires"] is not None and parse_iso(job["expires"]) <= now():
                self.expire(job_id)
                return None
            return job
        if not self.heartbeat.alive(job["owner"]):
            try:
                return self.finish(job_id, FAILED, error=orphaned_problem(job))
            except FileNotFoundError:  # deleted meanwhile
                return None
        job["cancel_requested"] = (self.folder(job_id) / CANCEL_FILE).exists()
        return job

    def update(self, job_id: str, **changes: object) -> dict:
        """Rewrite job.json with `changes` (atomically); FileNotFoundError when it is gone."""
        with self._lock:
            path = self.folder(job_id) / JOB_FILE
            job = json.loads(path.read_text()) | changes
            write_atomic(path, json.dumps(job).encode())
        return job

    def finish(self, job_id: str, state: str, **changes: object) -> dict:
        """Mark the job finished (`state`), with its finishing and expiry times."""
        finished = now()
        return self.update(
            job_id,
            state=state,
            finished=iso(finished),
            expires=iso(finished + self.limits.ttl_s),
            **changes,
        )

    def write_result(self, job_id: str, data: bytes, media_type: str, headers: dict) -> dict:
        """Store the result file, then mark the job succeeded: a reader sees the result only
        once it is whole."""
        name = RESULT_FILES[media_type]
        write_atomic(self.folder(job_id) / name, data)
        result = {"file": name, "media_type": media_type, "bytes": len(data), "headers": headers}
        return self.finish(job_id, SUCCEEDED, result=result)

    def result_path(self, job: dict) -> Path:
        return self.folder(job["id"]) / job["result"]["file"]

    def input(self, job_id: str, name: str) -> np.ndarray:
        return np.load(self.folder(job_id) / f"input-{name}.npy", allow_pickle=False)

    def request_cancel(self, job_id: str) -> None:
        (self.folder(job_id) / CANCEL_FILE).touch()

    def cancel_requested(self, job_id: str) -> bool:
        return (self.folder(job_id) / CANCEL_FILE).exists()

    def ids(self) -> Iterator[str]:
        if self.root.is_dir():
            yield from (p.name for p in self.root.iterdir() if JOB_ID.fullmatch(p.name))

    def jobs(self) -> list[dict]:
        """Every stored job (expired ones removed, orphans marked failed), newest first."""
        jobs = [job for job_id in self.ids() if (job := self.read(job_id)) is not None]
        self.prune_tombstones()
        return sorted(jobs, key=lambda job: job["created"], reverse=True)

    def stored_bytes(self, jobs: list[dict]) -> int:
        """Bytes the jobs hold or, unfinished, may come to hold (their estimate)."""
        total = 0
        for job in jobs:
            held = folder_bytes(self.folder(job["id"]))
            total += held if job["state"] in FINISHED else max(held, job["estimated_bytes"])
        return total

    def check_room(self, needed: int) -> None:
        """429 with Retry-After when MAX_JOBS are stored or `needed` more bytes would pass
        MAX_JOB_BYTES (413 when the job alone would)."""
        limits, jobs = self.limits, self.jobs()  # reading them all removes the expired ones
        if needed > limits.max_bytes:
            raise ApiError(
                413,
                f"this job's result may take {needed / 1e6:.1f} MB, over MAX_JOB_BYTES "
                f"({limits.max_bytes / 1e6:.1f} MB); ask for fewer samples, or NPY rather "
                "than JSON (a sixth of the size)",
                "too-large",
            )
        held = self.stored_bytes(jobs)
        if len(jobs) >= limits.max_jobs:
            detail = f"{limits.max_jobs} jobs already stored (MAX_JOBS)"
        elif held + needed > limits.max_bytes:
            detail = (
                f"this job may take {needed / 1e6:.1f} MB and the stored jobs hold "
                f"{held / 1e6:.1f} MB of {limits.max_bytes / 1e6:.1f} MB (MAX_JOB_BYTES)"
            )
        else:
            return
        retry = self.seconds_to_room(jobs)
        raise ApiError(
            429,
            f"{detail}; delete finished jobs (DELETE /v1/jobs/{{id}}) or retry after {retry} s, "
            "when the oldest finished one expires (JOB_TTL)",
            "too-many-jobs",
            headers={"Retry-After": str(retry)},
        )

    def seconds_to_room(self, jobs: list[dict]) -> int:
        """Seconds until the first finished job expires (JOB_TTL when none has finished)."""
        expiries = [parse_iso(job["expires"]) for job in jobs if job["expires"]]
        soonest = min(expiries, default=now() + self.limits.ttl_s)
        return max(1, int(soonest - now()) + 1)

    def expire(self, job_id: str) -> None:
        """Delete an expired job, leaving an empty tombstone file that says when it expired."""
        self.tombstones.mkdir(parents=True, exist_ok=True)
        (self.tombstones / job_id).touch()
        self.delete(job_id)

    def expired_at(self, job_id: str) -> float | None:
        """When the job expired (Unix time), if it did within the last JOB_TTL seconds."""
        if not JOB_ID.fullmatch(job_id):
            return None
        try:
            expired = (self.tombstones / job_id).stat().st_mtime
        except OSError:
            return None
        return expired if now() - expired < self.limits.ttl_s else None

    def prune_tombstones(self) -> None:
        """Remove the tombstones older than JOB_TTL."""
        if self.tombstones.is_dir():
            for path in self.tombstones.iterdir():
                if self.expired_at(path.name) is None:
                    path.unlink(missing_ok=True)

    def delete(self, job_id: str) -> bool:
        """Remove a job's folder (renamed away first, so no reader sees half of it); False
        when there is none."""
        if not JOB_ID.fullmatch(job_id):
            return False
        return remove_folder(self.root, self.folder(job_id))


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def orphaned_problem(job: dict) -> dict:
    """The error of a job whose worker stopped (crashed, restarted, or its host went away)."""
    owner = job["owner"]
    detail = (
        f"the worker running this job (pid {owner['pid']} on {owner['host']}) stopped before it "
        "finished (a restart or a crash); submit the request again"
    )
    return problem_body(ApiError(503, detail, "job-lost"))
