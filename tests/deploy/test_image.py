"""The service image, built from the Dockerfile and run for real with buildah and podman.

deploy/podman.sh builds the CPU variant (RUNTIME=cpu: the CUDA wheels are gigabytes) on a local
stand-in for the python base image (no container registry is reachable), once per module; the
container then runs as in production: read-only root filesystem, /tmp a tmpfs, tini-style init
forwarding SIGTERM. Everything is checked over loopback (`--network host`). The first run on a
machine makes the base image (minutes); later runs reuse it and the build's layers.
"""

import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.server import ROOT, free_port, running_server, wait_ready
from service.config import REPO_MODELS

SCRIPT = ROOT / "deploy" / "podman.sh"
IMAGE = "localhost/collapse-lab:test-cpu"
TOOLS = ("buildah", "podman", "runc", "catatonit", "debootstrap")
SAMPLE = ("/v1/models/ring8-gan/samples", {"n": 64, "seed": 3})
NPY = {"Content-Type": "application/json", "Accept": "application/x-npy"}


@dataclass
class Container:
    name: str
    url: str
    log: Path  # the container's stdout and stderr, followed by `podman logs -f`
    follower: subprocess.Popen  # `podman logs -f`: it exits when the container stops


def podman(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """podman with deploy/podman.sh's storage and settings (runc, ulimits the machine allows)."""
    return subprocess.run(
        [str(SCRIPT), "podman", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def sample(url: str) -> bytes:
    """The NPY answer to the seeded sample request SAMPLE."""
    path, body = SAMPLE
    return post(url + path, json.dumps(body).encode(), NPY)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin"
    missing = [tool for tool in TOOLS if shutil.which(tool, path=path) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: the container test needs the Debian packages that "
            "`make system-test-deps` installs (as root; `make test` runs it)"
        )
    log = tmp_path_factory.mktemp("build") / "build.log"
    with log.open("w") as output:
        built = subprocess.run(
            [str(SCRIPT), "build", "cpu", IMAGE],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=1800,  # a first build on a fresh machine: minutes; a hung download: fail
        )
    assert built.returncode == 0, f"the image build failed:\n{log.read_text()[-4000:]}"
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str, tmp_path_factory: pytest.TempPathFactory):
    """The image running on a free loopback port, removed after the module's tests."""
    port, name = free_port(), f"collapse-lab-test-{os.getpid()}"
    run = ["run", "-d", "--name", name, "--init", "--network", "host", "--no-healthcheck"]
    run += ["--read-only", "--tmpfs", "/tmp", "-e", f"PORT={port}", image]
    started = podman(*run)
    assert started.returncode == 0, started.stderr
    log = tmp_path_factory.mktemp("container") / "container.log"
    with log.open("w") as output:
        follower = subprocess.Popen(
            [str(SCRIPT), "podman", "logs", "-f", name], stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, follower, seconds=120)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"the container did not become ready: {error}\n{log.read_text()[-3000:]}")
        yield Container(name, url, log, follower)
    finally:
        podman("rm", "-f", "-t", "2", name)
        follower.wait(timeout=30)


def test_readyz_answers_200_with_every_bundled_model_ready(container: Container) -> None:
    with urllib.request.urlopen(f"{container.url}/readyz", timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(f"{container.url}/v1/models", timeout=10) as response:
        served = {model["name"]: model["ready"] for model in json.load(response)["models"]}
    cards = [json.loads(path.read_text()) for path in REPO_MODELS.glob("*/card.json")]
    bundled = {card["name"] for card in cards if card["kind"] != "reference"}
    assert served == dict.fromkeys(bundled, True)


def test_seeded_samples_equal_those_of_the_repository_server(
    container: Container, tmp_path: Path
) -> None:
    """The image serves what `make serve` serves: the same bytes for the same seeded request."""
    from_image = sample(container.url)
    with running_server(REPO_MODELS, tmp_path / "gunicorn.log") as (url, _):
        from_repository = sample(url)
    assert np.load(io.BytesIO(from_image), allow_pickle=False).shape == (64, 2)
    assert from_image == from_repository


def test_diagnostics_of_an_uploaded_batch_give_a_verdict(container: Container) -> None:
    boundary = "collapse-lab-test"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="reference"\r\n\r\nring8\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.npy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + sample(container.url)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    report = json.loads(post(f"{container.url}/v1/diagnostics", form, headers))
    assert report["verdict"]["status"] in {"healthy", "partial_collapse", "collapsed"}, report


def test_runs_as_the_unprivileged_user_10001(container: Container) -> None:
    whoami = podman("exec", container.name, "id", "-u")
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == "10001"


def test_root_filesystem_is_read_only_and_tmp_writable(container: Container) -> None:
    # as root inside the container, so that only the read-only mount can refuse the write
    written = podman("exec", "--user", "0", container.name, "touch", "/probe")
    assert written.returncode != 0
    assert "Read-only file system" in written.stderr
    scratch = podman("exec", container.name, "touch", "/tmp/probe")
    assert scratch.returncode == 0, scratch.stderr


def test_logs_no_error_nor_a_write_to_the_read_only_root(container: Container) -> None:
    """Nothing writes outside /tmp: a figure (matplotlib's config and font cache) included."""
    body = json.dumps({"n": 500, "seed": 0}).encode()
    headers = {"Content-Type": "application/json", "Accept": "image/png"}
    figure = post(f"{container.url}/v1/models/ring8-gan/diagnose", body, headers)
    assert figure.startswith(b"\x89PNG")
    lines = container.log.read_text().splitlines()
    assert any("Booting worker" in line for line in lines), lines
    errors = [line for line in lines if "[ERROR]" in line or " ERROR " in line]
    assert not errors, errors
    refused = [line for line in lines if "Read-only file system" in line or "persist" in line]
    assert not refused, refused


def test_sigterm_stops_it_gracefully_with_exit_code_0(container: Container) -> None:
    """Last of the module: `podman stop` sends SIGTERM; gunicorn finishes and exits 0."""
    started = time.monotonic()
    stopped = podman("stop", "-t", "20", container.name)
    seconds = time.monotonic() - started
    assert stopped.returncode == 0, stopped.stderr
    assert seconds < 15, f"stopping took {seconds:.1f} s: SIGTERM was not handled"
    state = podman("inspect", "-f", "{{.State.ExitCode}}", container.name)
    assert state.stdout.strip() == "0", state.stdout + state.stderr
    container.follower.wait(timeout=30)
    log = container.log.read_text()
    assert "Handling signal: term" in log, log[-2000:]
    assert "Shutting down: Master" in log, log[-2000:]
