"""Client: one method per /v1 route, arrays in and out as NPY, reports as dicts."""

import io
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NPY = "application/x-npy"
ASYNC = {"Prefer": "respond-async"}  # RFC 7240: answer 202 and run the request as a job
UNFINISHED = ("queued", "running")
Batch = np.ndarray | str | Path  # an array (sent as .npy) or a file in any upload format


class ClientError(Exception):
    """A call the service refused or could not serve: the HTTP status and its problem+json
    (title, detail; `problem` holds the whole document, {} when the body was not JSON)."""

    def __init__(self, status: int, title: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.problem = status, title, detail, problem


@dataclass(frozen=True)
class Samples:
    """A samples answer: array [n, ...] float32, the seed that drew it (the service draws one
    when none was sent) and the model version."""

    array: np.ndarray
    seed: int
    version: int


class Client:
    """The service at `url` (e.g. "http://localhost:8000"); api_key for API_KEY deployments;
    timeout in seconds per call."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.url, self.api_key, self.timeout = url.rstrip("/"), api_key, timeout

    def models(self) -> list[dict[str, Any]]:
        """Every model's name, kind, readiness, provider, versions and card (GET /v1/models)."""
        return self._json("GET", "/v1/models")["models"]

    def references(self) -> list[dict[str, Any]]:
        """The built-in and uploaded references (GET /v1/references)."""
        return self._json("GET", "/v1/references")["references"]

    def samples(self, model: str, n: int, seed: int | None = None, **options: Any) -> Samples:
        """n samples of `model`; options: version, and steps, sampler, churn for score models."""
        body = {"n": n, "seed": seed, **options}
        data, headers = self._call(
            "POST", f"/v1/models/{model}/samples", json_body=body, accept=NPY
        )
        array = np.load(io.BytesIO(data), allow_pickle=False)
        return Samples(array, int(headers["X-Seed"]), int(headers["X-Model-Version"]))

    def diagnose(self, batch: Batch, reference: str | None = None) -> dict[str, Any]:
        """The diagnostics report of a batch (an array, or a path to an .npy, .npz, .csv,
        .json, .png or .zip file) against a reference name (none: the reference-free report)."""
        fields = {"reference": reference} if reference else {}
        return self._upload("/v1/diagnostics", batch, fields)

    def diagnose_model(self, model: str, n: int, seed: int | None = None, **options: Any) -> dict:
        """Generate n samples of `model` and diagnose them against its reference, in one call."""
        body = {"n": n, "seed": seed, **options}
        return self._json("POST", f"/v1/models/{model}/diagnose", json_body=body)

    def samples_job(self, model: str, n: int, seed: int | None = None, **options: Any) -> dict:
        """Submit `samples` as a job (no request deadline; n up to MAX_JOB_SAMPLES): the new
        job's status; its result (job_result) is a Samples."""
        body = {"n": n, "seed": seed, **options}
        path = f"/v1/models/{model}/samples"
        data, _ = self._call("POST", path, json_body=body, accept=NPY, headers=ASYNC)
        return json.loads(data)

    def diagnose_model_job(
        self, model: str, n: int, seed: int | None = None, **options: Any
    ) -> dict[str, Any]:
        """Submit `diagnose_model` as a job: its status; its result is the report."""
        body = {"n": n, "seed": seed, **options}
        path = f"/v1/models/{model}/diagnose"
        data, _ = self._call("POST", path, json_body=body, headers=ASYNC)
        return json.loads(data)

    def diagnose_job(self, batch: Batch, reference: str | None = None) -> dict[str, Any]:
        """Submit `diagnose` as a job: its status; its result is the report."""
        fields = {"reference": reference} if reference else {}
        return self._upload("/v1/diagnostics", batch, fields, headers=ASYNC)

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's status: state, progress {done, total, fraction}, error, result (GET)."""
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(self) -> list[dict[str, Any]]:
        """Every stored job, newest first."""
        return self._json("GET", "/v1/jobs")["jobs"]

    def wait(
        self,
        job_id: str,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a job every poll_s seconds until it finishes (TimeoutError after timeout_s);
        progress(status) after each poll. Its final status (state succeeded, failed or
        cancelled)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.job(job_id)
            if progress is not None:
                progress(status)
            if status["state"] not in UNFINISHED:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {status['state']}")
            time.sleep(poll_s)

    def job_result(self, job_id: str) -> Samples | dict[str, Any]:
        """A finished job's result: Samples for a samples job, else the report; ClientError
        with the job's problem when it failed (409 while it runs or when cancelled)."""
        data, headers = self._call("GET", f"/v1/jobs/{job_id}/result", accept=f"{NPY}, */*")
        if headers.get("Content-Type", "").startswith(NPY):
            array = np.load(io.BytesIO(data), allow_pickle=False)
            return Samples(array, int(headers["X-Seed"]), int(headers["X-Model-Version"]))
        return json.loads(data)

    def cancel_job(self, job_id: str) -> None:
        """Delete a finished job; ask an unfinished one to stop (then delete it once cancelled)."""
        self._call("DELETE", f"/v1/jobs/{job_id}")

    def create_reference(
        self,
        name: str,
        batch: Batch,
        classifier: str | None = None,
        embedding: str | None = None,
    ) -> dict[str, Any]:
        """Upload real samples as the reference `name`, embedded by the named classifier or
        embedding model of the repository when given; its card."""
        named = {"classifier": classifier, "embedding": embedding}
        fields = {"name": name} | {key: value for key, value in named.items() if value}
        return self._upload("/v1/references", batch, fields)

    def delete_reference(self, name: str) -> None:
        """Remove an uploaded reference."""
        self._call("DELETE", f"/v1/references/{name}")

    def _upload(
        self, path: str, batch: Batch, fields: dict[str, str], headers: dict | None = None
    ) -> dict[str, Any]:
        if isinstance(batch, np.ndarray):
            buffer = io.BytesIO()
            np.save(buffer, batch, allow_pickle=False)
            filename, content = "batch.npy", buffer.getvalue()
        else:
            filename, content = Path(batch).name, Path(batch).read_bytes()
        body, content_type = multipart(fields, filename, content)
        data, _ = self._call("POST", path, body=body, content_type=content_type, headers=headers)
        return json.loads(data)

    def _json(self, method: str, path: str, json_body: dict | None = None) -> dict[str, Any]:
        data, _ = self._call(method, path, json_body=json_body)
        return json.loads(data)

    def _call(
        self,
        method: str,
        path: str,
        json_body: dict | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """(response body, headers); ClientError for an HTTP error answer."""
        headers = {"Accept": accept, **(headers or {})}
        if json_body is not None:
            body = json.dumps({k: v for k, v in json_body.items() if v is not None}).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, body, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            raise problem_error(error) from None


def problem_error(error: urllib.error.HTTPError) -> ClientError:
    """The ClientError of an HTTP error answer (problem+json when the body is JSON)."""
    raw = error.read()
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = problem.get("detail") or raw.decode("utf-8", "replace")[:200]
    return ClientError(error.code, problem.get("title") or error.reason, detail, problem)


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """(body, content type) of multipart/form-data with text `fields` and one `file` part."""
    boundary = f"----collapse-lab-{secrets.token_hex(12)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    body = b"".join(parts) + head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
