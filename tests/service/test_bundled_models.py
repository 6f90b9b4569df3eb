"""The bundled repository (models/): every card valid, every ONNX file the one it names."""

import io
import json
from pathlib import Path

import pytest

from service.app import create_app
from service.config import REPO_MODELS
from service.repository import sha256, validate_card
from tests.helpers import make_config

CARDS = sorted(REPO_MODELS.glob("*/card.json"))


def test_bundle_has_the_promised_models():
    names = {path.parent.name for path in CARDS}
    assert {"ring8", "grid25", "ring8-gan", "grid25-gan", "digits", "stacked-digits"} <= names


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.parent.name)
def test_card_is_valid_and_files_match(path: Path):
    card = json.loads(path.read_text())
    validate_card(card)
    assert card["name"] == path.parent.name
    files = card.get("versions", [])
    if card["kind"] == "reference" and card["reference"]["type"] == "classifier":
        files = [card["reference"], card["reference"]["features"]]
    for entry in files:
        assert sha256(path.parent / entry["file"]) == entry["sha256"]
        if "parity" in entry:
            assert entry["ir_version"] <= 10 and entry["parity"]["max_abs_error"] <= 1e-4


def test_bundle_is_ready():
    response = create_app(make_config(REPO_MODELS)).test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("name", ["ring8-gan", "grid25-gan"])
def test_card_diagnostics_reproduce_through_the_service(name):
    """The numbers in the card are what the service gives for the same seed and n."""
    client = create_app(make_config(REPO_MODELS)).test_client()
    card = json.loads((REPO_MODELS / name / "card.json").read_text())
    measured = card["diagnostics"]
    body = {"n": measured["n"], "seed": measured["seed"]}
    drawn = client.post(f"/v1/models/{name}/samples", json=body)
    form = {"file": (io.BytesIO(drawn.data), "samples.json"), "reference": card["reference"]}
    report = client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    expected = {key: value for key, value in measured.items() if key not in ("n", "seed")}
    assert report.get_json() == expected
