"""docs/import.md runs as written: its Python block exports a tiny torch generator with
torch.onnx.export, its import block writes the card, and the real gunicorn serves the model
for its curl blocks: the same samples as onnxruntime on the declared latents, and the
diagnosis the card holds."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.server import running_server
from lab.noise import latents
from service.config import REPO_MODELS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "import.md"
DOC_HOST = "localhost:8000"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """command in cwd with this interpreter's `python` first on PATH and the repo importable."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every block of the page run in an empty folder holding models/ring8: the folder, the
    card and the two curl answers."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    work = tmp_path_factory.mktemp("import-docs")
    shutil.copytree(REPO_MODELS / "ring8", work / "models" / "ring8")
    (python_block,) = blocks("python")
    (work / "export_generator.py").write_text(python_block)
    run([sys.executable, "export_generator.py"], work)
    import_block, curl_block = blocks("sh")
    imported = run(["bash", "-euo", "pipefail", "-c", import_block], work).stdout
    with running_server(work / "models", work / "gunicorn.log") as (url, _):
        script = curl_block.replace(DOC_HOST, url.removeprefix("http://"))
        answers = run(["bash", "-euo", "pipefail", "-c", script], work).stdout
    decoder, first = json.JSONDecoder(), None
    first, end = decoder.raw_decode(answers)
    second, _ = decoder.raw_decode(answers[end:].lstrip())
    card = json.loads((work / "models" / "my-gan" / "card.json").read_text())
    return {"work": work, "out": imported, "card": card, "samples": first, "report": second}


def test_the_import_writes_an_imported_card(documented: dict) -> None:
    card = documented["card"]
    assert documented["out"].strip().endswith("models/my-gan/card.json")
    assert card["imported"] is True and "training" not in card
    assert card["latent"] == {"distribution": "uniform", "low": -1.0, "high": 1.0, "dim": 8}
    assert card["versions"][0]["source"]["file"] == "my-generator.onnx"
    assert card["diagnostics"]["n"] == 2500 and card["diagnostics"]["verdict"]["status"]


def test_served_samples_are_the_file_on_the_declared_latents(documented: dict) -> None:
    answer, card = documented["samples"], documented["card"]
    session = ort.InferenceSession(
        str(documented["work"] / "models" / "my-gan" / "1" / "model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    expected = session.run(None, {"z": latents(card["latent"], 4, 7)})[0]
    assert answer["shape"] == [4, 2]
    np.testing.assert_array_equal(np.asarray(answer["samples"], np.float32), expected)


def test_the_diagnosis_is_the_cards(documented: dict) -> None:
    report, diagnostics = documented["report"], documented["card"]["diagnostics"]
    assert report["verdict"] == diagnostics["verdict"]
    assert report["modes"] == diagnostics["modes"] and report["kl"] == diagnostics["kl"]
