"""README's "Try it" runs as written: its shell blocks against the real gunicorn serving the
bundled models, in an empty folder, each command's failure a test failure."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.server import running_server
from service.config import REPO_MODELS

README = Path(__file__).resolve().parents[2] / "README.md"
README_HOST = "localhost:8000"  # where "Try it" says `make serve` listens


def try_it_blocks() -> list[str]:
    """The ```sh blocks of the "Try it" section that talk to the service."""
    section = README.read_text().split("## Try it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [block for block in blocks if README_HOST in block]


@pytest.fixture(scope="module")
def try_it_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(everything the blocks printed, the folder they ran in)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    folder = tmp_path_factory.mktemp("try-it")
    log, data = folder / "gunicorn.log", folder / "data"
    with running_server(REPO_MODELS, log, DATA_DIR=str(data)) as (url, _):
        script = "\n".join(try_it_blocks()).replace(README_HOST, url.removeprefix("http://"))
        work = folder / "work"
        work.mkdir()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, work


def test_try_it_has_the_service_blocks() -> None:
    blocks = try_it_blocks()
    assert len(blocks) == 2 and "/v2/models/" in blocks[1]


def test_try_it_lists_the_models_by_name(try_it_output: tuple[str, Path]) -> None:
    assert "ring8-gan gan True" in try_it_output[0]


def test_try_it_diagnoses_the_collapsed_gan(try_it_output: tuple[str, Path]) -> None:
    assert '"status": "collapsed"' in try_it_output[0]


def test_try_it_writes_the_files_it_names(try_it_output: tuple[str, Path]) -> None:
    work = try_it_output[1]
    assert (work / "samples.npy").read_bytes()[:6] == b"\x93NUMPY"
    assert (work / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((work / "real.csv").read_text().splitlines()) == 2000


def test_try_it_makes_and_uses_a_reference(try_it_output: tuple[str, Path]) -> None:
    output = try_it_output[0]
    assert '"name": "my-data"' in output and '"reference": "my-data"' in output


def test_try_it_runs_the_v2_example(try_it_output: tuple[str, Path]) -> None:
    assert '"model_name": "ring8-gan"' in try_it_output[0]
    assert "problem" not in try_it_output[0]  # no problem+json answer anywhere
