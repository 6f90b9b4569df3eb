"""The service's use of a score model's fused trajectory graph (FUSED_SAMPLER)."""

import json

import pytest

import lab.sampling as sampling
from service.app import create_app
from service.repository import Repository
from tests.helpers import make_config

NAME = "grid25-edm"


def draw(client, **body) -> list:
    response = client.post(f"/v1/models/{NAME}/samples", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["samples"]


def test_fused_and_step_by_step_give_the_same_samples(model_repo, monkeypatch):
    calls = []
    original = sampling.fused_score_samples
    monkeypatch.setattr(
        sampling, "fused_score_samples", lambda *a: calls.append(a[2]) or original(*a)
    )
    answers = {}
    for setting in ("on", "off"):
        client = create_app(make_config(model_repo, fused_sampler=setting)).test_client()
        answers[setting] = draw(client, n=50, seed=4)
    assert calls == [50]  # only "on" ran the fused graph
    assert answers["on"] == answers["off"]


@pytest.mark.parametrize(
    "body", [{"steps": 7}, {"sampler": "euler"}, {"churn": 5.0}], ids=["steps", "sampler", "churn"]
)
def test_requests_the_graph_was_not_built_for_go_step_by_step(model_repo, monkeypatch, body):
    def refuse(*args):
        raise AssertionError("the fused graph must not run for this request")

    monkeypatch.setattr(sampling, "fused_score_samples", refuse)
    client = create_app(make_config(model_repo, fused_sampler="on")).test_client()
    assert len(draw(client, n=5, seed=1, **body)) == 5


def test_it_is_on_by_default(model_repo, monkeypatch):
    calls = []
    original = sampling.fused_score_samples
    monkeypatch.setattr(
        sampling, "fused_score_samples", lambda *a: calls.append(a[2]) or original(*a)
    )
    client = create_app(make_config(model_repo)).test_client()
    assert len(draw(client, n=5, seed=1)) == 5 and calls == [5]


def test_an_altered_fused_file_makes_the_model_not_ready(repo_copy):
    card = json.loads((repo_copy / NAME / "card.json").read_text())
    fused = repo_copy / NAME / card["versions"][0]["fused"]["file"]
    fused.write_bytes(fused.read_bytes() + b"\0")
    entry = Repository(repo_copy, "cpu").load().get(NAME)
    assert not entry.ready and "sha256 differs" in entry.error


def test_fused_sampler_setting_is_validated():
    from service.config import ServiceConfig

    with pytest.raises(ValueError, match="FUSED_SAMPLER"):
        ServiceConfig.from_env({"FUSED_SAMPLER": "auto"})
