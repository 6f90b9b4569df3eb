"""The image's lock files agree with pyproject.toml and the constraint pins.

deploy/requirements-{gpu,cpu}.lock are written by `make lock` (deploy/lock.py, pip-compile);
the Dockerfile installs one of them with `pip install --require-hashes --no-deps`, so a
dependency missing from a lock is missing from the image. Checked here: every dependency of
pyproject.toml (for the image's platform, CPython 3.11 on linux x86_64) is in both locks,
pinned with == to a version its specifier allows, and every entry carries sha256 hashes.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {runtime: ROOT / "deploy" / f"requirements-{runtime}.lock" for runtime in ("gpu", "cpu")}
# The image's platform, whatever machine the tests run on.
IMAGE_PLATFORM = {
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "os_name": "posix",
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def locked(text: str) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (pinned version, sha256 hashes)} of a pip-compile lock file's text.

    Raises ValueError for an entry that is not `name==version`.
    """
    entries = {}
    logical = re.sub(r"\\\n", " ", text)  # continuation lines joined
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split(" --")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)\s*(;.*)?", requirement.strip())
        if match is None:
            raise ValueError(f"not pinned with ==: {requirement!r}")
        hashes = [o.split(":", 1)[1].strip() for o in options if o.startswith("hash=sha256:")]
        entries[canonicalize_name(match[1])] = (match[2], hashes)
    return entries


def required(runtime: str) -> list[Requirement]:
    """pyproject.toml's dependencies that apply in the image, for `runtime` gpu or cpu."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        lines = tomllib.load(file)["project"]["dependencies"]
    requirements = [Requirement(line) for line in lines]
    applying = [r for r in requirements if r.marker is None or r.marker.evaluate(IMAGE_PLATFORM)]
    if runtime == "cpu":  # the CPU image runs plain onnxruntime in place of onnxruntime-gpu
        swapped = Requirement(str(next(r for r in applying if r.name == "onnxruntime-gpu")))
        swapped.name, swapped.marker = "onnxruntime", None
        applying = [r for r in applying if r.name != "onnxruntime-gpu"] + [swapped]
    return applying


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a constraints file's `name==version` lines."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = version.strip()
    return found


def test_the_parser_refuses_an_unpinned_entry() -> None:
    with pytest.raises(ValueError, match="not pinned"):
        locked("numpy>=1.26 \\\n    --hash=sha256:00\n")
    assert locked("a-b==1.0 ; sys_platform == 'linux' \\\n    --hash=sha256:ff\n") == {
        "a-b": ("1.0", ["ff"])
    }


@pytest.mark.parametrize("runtime", sorted(LOCKS))
def test_every_dependency_is_pinned_with_hashes(runtime: str) -> None:
    entries = locked(LOCKS[runtime].read_text())
    for requirement in required(runtime):
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement} is not in {LOCKS[runtime].name}: run `make lock`"
        version, _ = entries[name]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    unhashed = [name for name, (_, hashes) in entries.items() if not hashes]
    assert not unhashed, f"entries without --hash: {unhashed}"
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, hashes in entries.values() for h in hashes)


@pytest.mark.parametrize("runtime", sorted(LOCKS))
def test_locks_follow_the_constraint_pins_and_hold_no_torch(runtime: str) -> None:
    entries = locked(LOCKS[runtime].read_text())
    constraints = pins(ROOT / "constraints.txt")
    if runtime == "gpu":
        cuda = pins(ROOT / "deploy" / "constraints-cuda.txt")
        assert cuda.keys() <= entries.keys(), "every CUDA library of constraints-cuda.txt"
        constraints |= cuda
    for name, (version, _) in entries.items():
        assert constraints.get(name, version) == version, (name, version, constraints[name])
    assert "torch" not in entries


def test_only_the_gpu_lock_holds_cuda() -> None:
    gpu, cpu = (locked(LOCKS[runtime].read_text()) for runtime in ("gpu", "cpu"))
    assert "onnxruntime-gpu" in gpu and "nvidia-cudnn-cu13" in gpu and "nvidia-cublas" in gpu
    assert "onnxruntime" in cpu
    assert not [name for name in cpu if name.startswith("nvidia-") or name == "onnxruntime-gpu"]


def test_marker_of_the_image_platform_is_what_pip_compile_saw() -> None:
    """The locks were resolved on linux x86_64: the GPU lock keeps onnxruntime-gpu's marker."""
    text = LOCKS["gpu"].read_text()
    marker = re.search(r"^onnxruntime-gpu==\S+ ; (.+?) \\$", text, re.MULTILINE)
    assert marker is not None and Marker(marker[1]).evaluate(IMAGE_PLATFORM)
