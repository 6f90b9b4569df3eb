"""Loading the model repository: broken entries are not ready; the rest serve."""

import json
import re
from pathlib import Path

import pytest

from lab.cards import validate_card
from service.app import create_app
from tests.helpers import make_config


def break_card(repo: Path, name: str, change) -> None:
    path = repo / name / "card.json"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


BREAKAGES = {
    "onnx file corrupted": lambda repo: (repo / "ring8-gan/1/model.onnx").write_bytes(b"junk"),
    "onnx file missing": lambda repo: (repo / "ring8-gan/1/model.onnx").unlink(),
    "card not json": lambda repo: (repo / "ring8-gan/card.json").write_text("{"),
    "card fails schema": lambda repo: break_card(repo, "ring8-gan", lambda c: c.pop("latent_dim")),
    "reference missing": lambda repo: break_card(
        repo, "ring8-gan", lambda c: c.update(reference="nowhere")
    ),
    "card name differs": lambda repo: break_card(
        repo, "ring8-gan", lambda c: c.update(name="other")
    ),
    "card without folder card": lambda repo: (repo / "ring8-gan/card.json").unlink(),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_broken_model_is_not_ready_and_others_serve(repo_copy, breakage):
    BREAKAGES[breakage](repo_copy)
    client = create_app(make_config(repo_copy)).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "ring8-gan" in ready.get_json()["not_ready"]
    assert client.get("/healthz").status_code == 200
    models = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert models["ring8-gan"]["ready"] is False and models["ring8-gan"]["error"]
    response = client.post("/v1/models/ring8-gan/samples", json={"n": 1})
    assert response.status_code in (404, 503)
    assert response.mimetype == "application/problem+json"
    assert client.get("/v1/references/ring8").status_code == 200


def test_a_model_that_loads_but_cannot_run_is_not_ready(repo_copy):
    """Its signature matches the card, but every run fails (a reshape to 3 values): the warm-up
    run finds it before any request does."""
    from onnx import TensorProto, helper

    from lab.cards import sha256

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["z", "shape"], ["samples"])],
        "broken",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("samples", TensorProto.FLOAT, ["batch", 2])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    path = repo_copy / "ring8-gan" / "1" / "model.onnx"
    path.write_bytes(model.SerializeToString())
    break_card(repo_copy, "ring8-gan", lambda c: c["versions"][0].update(sha256=sha256(path)))
    client = create_app(make_config(repo_copy)).test_client()
    error = client.get("/readyz").get_json()["not_ready"]["ring8-gan"]
    assert "1/model.onnx: the warm-up run failed" in error
    assert client.post("/v1/models/grid25-edm/samples", json={"n": 2}).status_code == 200


def test_sha256_mismatch_is_not_ready(repo_copy):
    break_card(repo_copy, "ring8-gan", lambda c: c["versions"][0].update(sha256="0" * 64))
    entry = create_app(make_config(repo_copy)).extensions["repository"].entries["ring8-gan"]
    assert not entry.ready and "sha256" in entry.error


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"noise_dims": 3}, "noise_dims must be an integer from 1 to dim \\(2\\), got 3"),
        ({"dim": 3}, "need \\[K >= 1, 3\\]"),
    ],
)
def test_a_mixture_reference_the_schema_passes_but_cannot_hold_is_not_ready(
    repo_copy, change, reason
):
    """What the schema cannot check (noise_dims above dim, centres of another dimension) is
    found at load: the reference is not ready, with the reason, not a 4xx in each report."""
    break_card(repo_copy, "ring8", lambda c: c["reference"].update(change))
    entry = create_app(make_config(repo_copy)).extensions["repository"].entries["ring8"]
    assert not entry.ready
    assert re.search(reason, entry.error)


def test_missing_repository_serves_nothing_but_lives(tmp_path):
    client = create_app(make_config(tmp_path / "absent")).test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/models").get_json() == {"models": []}


def test_ready_when_everything_loads(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["models"] == ["grid25", "grid25-edm", "ring8", "ring8-gan"]


def test_validate_card_names_the_field(model_repo):
    card = json.loads((model_repo / "ring8-gan" / "card.json").read_text())
    card["versions"][0]["sha256"] = "xyz"
    with pytest.raises(ValueError, match="versions/0/sha256"):
        validate_card(card)
