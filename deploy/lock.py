"""Write the image's lock files, deploy/requirements-{gpu,cpu}.lock, with pip-compile.

Run by `make lock` (which makes a throwaway virtualenv with pip-tools). Each lock pins every
package the image installs, its dependencies included, with the sha256 of every file PyPI
offers for that version, so the Dockerfile's `pip install --require-hashes --no-deps` installs
exactly these files. Resolved for the image's platform (CPython 3.11, linux x86_64), which
must be the platform this runs on, and within the pins of constraints.txt (and
deploy/constraints-cuda.txt for the GPU image).

The requirements are pyproject.toml's dependencies, plus per runtime:
- gpu: onnxruntime-gpu with its CUDA and cuDNN wheels, and nvidia-cublas, which its [cuda]
  extra omits although its CUDA provider links cuBLAS;
- cpu: plain onnxruntime instead of onnxruntime-gpu (the image CI builds: the CUDA wheels
  are gigabytes).
"""

import os
import platform
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRA = {
    "gpu": ["onnxruntime-gpu[cuda,cudnn]", "nvidia-cublas"],
    "cpu": ["onnxruntime"],
}
CONSTRAINTS = {
    "gpu": ["constraints.txt", "deploy/constraints-cuda.txt"],
    "cpu": ["constraints.txt"],
}


def requirements(runtime: str) -> list[str]:
    """pyproject.toml's dependencies for `runtime` ('gpu' or 'cpu') plus its extra packages."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    if runtime == "cpu":  # the marker would pick onnxruntime-gpu on linux x86_64
        dependencies = [line for line in dependencies if not line.startswith("onnxruntime")]
    return dependencies + EXTRA[runtime]


def compile_lock(runtime: str) -> None:
    """Resolve and hash `runtime`'s requirements into deploy/requirements-<runtime>.lock."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / f"requirements-{runtime}.in"
        source.write_text("\n".join(requirements(runtime)) + "\n")
        command = [sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes"]
        command += ["--allow-unsafe", "--strip-extras", "--no-emit-index-url", "--rebuild"]
        for constraint in CONSTRAINTS[runtime]:
            command += ["--constraint", constraint]
        command += ["--output-file", f"deploy/requirements-{runtime}.lock", str(source)]
        # PyPI only: this machine's pip configuration adds local wheel folders and indexes,
        # whose files the image could not fetch (and whose hashes PyPI would not match).
        environment = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        environment["CUSTOM_COMPILE_COMMAND"] = "make lock"  # the header says how to redo it
        environment.pop("PIP_FIND_LINKS", None)
        environment.pop("PIP_EXTRA_INDEX_URL", None)
        subprocess.run(command, cwd=ROOT, env=environment, check=True)
    lock = ROOT / f"deploy/requirements-{runtime}.lock"
    # The annotations name the throwaway input file; name the requirement list's home instead.
    lock.write_text(lock.read_text().replace(f"-r {source}", "pyproject.toml (deploy/lock.py)"))


def main() -> None:
    if sys.version_info[:2] != (3, 11) or (sys.platform, platform.machine()) != (
        "linux",
        "x86_64",
    ):
        sys.exit("run with CPython 3.11 on linux x86_64, the image's platform")
    for runtime in sys.argv[1:] or sorted(EXTRA):
        compile_lock(runtime)


if __name__ == "__main__":
    main()
