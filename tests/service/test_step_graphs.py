"""The service's use of a score model's step graphs (STEP_GRAPHS): every request the fused
graph does not serve runs one ONNX graph per step, the state kept in the session's memory."""

import json

import numpy as np
import pytest

import lab.sampling as sampling
from lab import runtime
from service.app import create_app
from service.repository import Repository
from tests.helpers import make_config

NAME = "grid25-edm"
OTHER_REQUESTS = [
    {"steps": 7},
    {"sampler": "euler", "steps": 9},
    {"churn": 20.0},
    {"steps": 1, "sampler": "heun"},
]


def draw(client, **body) -> list:
    response = client.post(f"/v1/models/{NAME}/samples", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["samples"]


def spy(monkeypatch, name: str) -> list:
    """Record the n of each call to lab.sampling.<name> (and still run it)."""
    calls, original = [], getattr(sampling, name)
    monkeypatch.setattr(sampling, name, lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    return calls


@pytest.mark.parametrize("body", OTHER_REQUESTS, ids=lambda body: json.dumps(body))
def test_step_graphs_and_numpy_give_the_same_samples(model_repo, monkeypatch, body):
    calls = spy(monkeypatch, "stepped_score_samples")
    answers = {}
    for setting in ("on", "off"):
        client = create_app(make_config(model_repo, step_graphs=setting)).test_client()
        answers[setting] = np.asarray(draw(client, n=40, seed=3, **body))
    assert calls == [40]  # only "on" ran the step graphs
    np.testing.assert_allclose(answers["on"], answers["off"], rtol=0, atol=1e-5)
    assert not np.array_equal(answers["on"], draw(client, n=40, seed=4, **body))


def test_pieces_never_change_the_samples(model_repo):
    answers = [
        draw(create_app(make_config(model_repo, max_batch=b)).test_client(), n=25, seed=2, steps=5)
        for b in (4, 8192)
    ]
    assert answers[0] == answers[1]


def test_the_default_request_still_takes_the_fused_graph(model_repo, monkeypatch):
    stepped, fused = (
        spy(monkeypatch, "stepped_score_samples"),
        spy(monkeypatch, "fused_score_samples"),
    )
    client = create_app(make_config(model_repo)).test_client()
    draw(client, n=6, seed=1)
    draw(client, n=7, seed=1, steps=4)
    assert fused == [6] and stepped == [7]


def test_the_state_stays_in_an_ortvalue_between_steps(model_repo, monkeypatch):
    """Each step's state input is the previous step's output OrtValue: nothing goes back to
    numpy between steps (on a GPU, no host round trip)."""
    fed, made = [], []
    original = runtime.run_bound

    def recording(session, inputs, output):
        fed.append(inputs["x"])
        made.append(original(session, inputs, output))
        return made[-1]

    client = create_app(make_config(model_repo)).test_client()  # (its warm-up not recorded)
    monkeypatch.setattr(runtime, "run_bound", recording)
    draw(client, n=3, seed=1, steps=6)
    assert len(made) == 6  # one run per step (Heun: the last one is the Euler graph)
    assert all(fed[i + 1] is made[i] for i in range(5))


def test_an_altered_step_graph_makes_the_model_not_ready(repo_copy):
    card = json.loads((repo_copy / NAME / "card.json").read_text())
    graph = repo_copy / NAME / card["versions"][0]["step_graphs"]["heun"]["file"]
    graph.write_bytes(graph.read_bytes() + b"\0")
    entry = Repository(repo_copy, "cpu").load().get(NAME)
    assert not entry.ready and "sha256 differs" in entry.error and "step-heun" in entry.error


def test_a_card_without_step_graphs_steps_in_numpy(repo_copy, monkeypatch):
    path = repo_copy / NAME / "card.json"
    card = json.loads(path.read_text())
    del card["versions"][0]["step_graphs"]
    path.write_text(json.dumps(card))
    calls = spy(monkeypatch, "stepped_score_samples")
    assert len(draw(create_app(make_config(repo_copy)).test_client(), n=5, seed=1, steps=3)) == 5
    assert calls == []


def test_step_graphs_setting_is_validated():
    from service.config import ServiceConfig

    with pytest.raises(ValueError, match="STEP_GRAPHS"):
        ServiceConfig.from_env({"STEP_GRAPHS": "yes"})
