"""Ensembles served and diagnosed as one model: the seed rule end to end on the real gunicorn,
the `ensemble` section of the report, and members checked at load (a broken ensemble is not
ready, with the reason, and the rest serve)."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

from lab.cards import validate_card
from lab.ensembles import member_stream
from service.app import create_app
from tests.helpers import copy_model, make_config
from tests.service.conftest import serving
from tests.service.test_jobs import poll
from trainer.ensemble import MemberChoice, write_ensemble

NPY = {"Accept": "application/x-npy"}
RING8_MIX = [MemberChoice("ring8-gan", None, 0.25), MemberChoice("ring8-gan-b", None, 0.75)]


def add_ensemble_card(models: Path, name: str, members: list[dict]) -> None:
    """models/<name>: ring8-mix's card with other members, written as is (no checks)."""
    card = json.loads((models / "ring8-mix" / "card.json").read_text())
    card = {**card, "name": name, "versions": [{"version": 1, "members": members}]}
    (models / name).mkdir()
    (models / name / "card.json").write_text(json.dumps(card))


@pytest.fixture(scope="module")
def ensemble_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny repository, a second ring8 GAN (ring8-gan-b: ring8-gan's files), the ensembles
    ring8-mix (ring8-gan 0.25, ring8-gan-b 0.75) and grid25-mix (grid25-edm alone), written by
    the trainer, and three broken ensembles (BROKEN)."""
    models = Path(shutil.copytree(model_repo, tmp_path_factory.mktemp("ensembles") / "models"))
    copy_model(models, "ring8-gan", "ring8-gan-b")
    write_ensemble(models, "ring8-mix", RING8_MIX)
    write_ensemble(models, "grid25-mix", [MemberChoice("grid25-edm", None, 1.0)])
    for name, (members, _) in BROKEN.items():
        add_ensemble_card(models, name, members)
    return models


def member(model: str, weight: float, version: int = 1) -> dict:
    """An ensemble version's `members` item."""
    return {"model": model, "version": version, "weight": weight}


# name: (members, what its error says)
BROKEN = {
    "bad-weights": (
        [member("ring8-gan", 0.5), member("ring8-gan-b", 0.4)],
        "the weights sum to 0.9, not 1",
    ),
    "missing-member": (
        [member("ring8-gan", 0.5), member("nowhere", 0.5)],
        "member 'nowhere' not in the repository",
    ),
    "incompatible-member": (
        [member("ring8-gan", 0.5), member("grid25-edm", 0.5)],
        "member 'grid25-edm' is incompatible: its dataset is 'grid25', the ensemble's 'ring8'",
    ),
    "missing-version": ([member("ring8-gan", 1.0, 9)], "member 'ring8-gan' has no version 9"),
}


@pytest.fixture(scope="module")
def server(ensemble_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """The url of a gunicorn serving ensemble_repo (broken entries: not ready)."""
    with serving(ensemble_repo, tmp_path_factory, "/healthz") as url:
        yield url


def npy(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_weights_not_summing_to_one_fail_validation_naming_the_fix(ensemble_repo):
    card = json.loads((ensemble_repo / "bad-weights" / "card.json").read_text())
    with pytest.raises(ValueError, match="divide each by their sum: ring8-gan:0.555556"):
        validate_card(card)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_ensemble_is_not_ready_with_the_reason_and_the_rest_serve(server, name):
    reason = BROKEN[name][1]
    ready = requests.get(f"{server}/readyz", timeout=10)
    assert ready.status_code == 503 and reason in ready.json()["not_ready"][name]
    described = requests.get(f"{server}/v1/models/{name}", timeout=10).json()
    assert described["ready"] is False and reason in described["error"]
    refused = requests.post(f"{server}/v1/models/{name}/samples", json={"n": 2}, timeout=10)
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert reason in refused.json()["detail"]
    for model in ("ring8-mix", "ring8-gan", "grid25-mix"):
        assert requests.get(f"{server}/v1/models/{model}", timeout=10).json()["ready"] is True


def test_same_seed_same_bits_and_each_sample_from_its_member_at_its_seed(server):
    """The seed rule (lab/ensembles.py) end to end: the ensemble's rows assigned to member k
    are member k's own samples for n_k and seed_k, requested from the member itself."""
    body = {"n": 500, "seed": 11}
    first = requests.post(f"{server}/v1/models/ring8-mix/samples", json=body, headers=NPY)
    again = requests.post(f"{server}/v1/models/ring8-mix/samples", json=body, headers=NPY)
    assert first.content == again.content
    samples = npy(first)
    seeds, members = member_stream([0.25, 0.75], 500, 11)
    for k, model in enumerate(("ring8-gan", "ring8-gan-b")):
        rows = members == k
        own = {"n": int(rows.sum()), "seed": seeds[k]}
        drawn = npy(requests.post(f"{server}/v1/models/{model}/samples", json=own, headers=NPY))
        np.testing.assert_array_equal(samples[rows], drawn)
    assert 0.2 < np.mean(members == 0) < 0.3  # the weights, within chance at n = 500


def test_a_different_seed_draws_other_samples(server):
    url = f"{server}/v1/models/ring8-mix/samples"
    one = npy(requests.post(url, json={"n": 64, "seed": 1}, headers=NPY))
    two = npy(requests.post(url, json={"n": 64, "seed": 2}, headers=NPY))
    assert not np.array_equal(one, two)


def test_samples_json_echoes_the_members(server):
    response = requests.post(f"{server}/v1/models/ring8-mix/samples", json={"n": 3, "seed": 0})
    answer = response.json()
    assert response.headers["X-Model-Version"] == "1" and answer["shape"] == [3, 2]
    assert [m["model"] for m in answer["members"]] == ["ring8-gan", "ring8-gan-b"]
    assert [m["weight"] for m in answer["members"]] == [0.25, 0.75]


def test_a_score_member_draws_with_its_card_defaults(server):
    seeds, _ = member_stream([1.0], 40, 5)
    mix = requests.post(f"{server}/v1/models/grid25-mix/samples", json={"n": 40, "seed": 5})
    own = {"n": 40, "seed": seeds[0]}
    member = requests.post(f"{server}/v1/models/grid25-edm/samples", json=own)
    assert mix.json()["samples"] == member.json()["samples"]


def test_diagnose_reports_member_histograms(server):
    response = requests.post(
        f"{server}/v1/models/ring8-mix/diagnose", json={"n": 800, "seed": 3}, timeout=60
    )
    report = response.json()
    assert response.status_code == 200 and report["model"] == "ring8-mix"
    section = report["ensemble"]
    _, members = member_stream([0.25, 0.75], 800, 3)
    assert [m["n"] for m in section["members"]] == np.bincount(members).tolist()
    histograms = np.array([m["histogram"] for m in section["members"]])
    assert histograms.sum(axis=0).tolist() == report["modes"]["histogram"]
    assert section["why"][0].startswith(f"together the members cover {report['modes']['covered']}")


def test_diagnose_figure_and_job(server):
    url = f"{server}/v1/models/ring8-mix/diagnose"
    body = {"n": 300, "seed": 4, "weights": [0.5, 0.5]}
    figure = requests.post(url, json=body, headers={"Accept": "image/png"}, timeout=60)
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    accepted = requests.post(url, json=body, headers={"Prefer": "respond-async"}, timeout=60)
    assert accepted.status_code == 202
    location = server + accepted.headers["Location"]
    job = poll(location)
    assert job["state"] == "succeeded"
    result = requests.get(f"{location}/result", timeout=10).json()
    synchronous = requests.post(url, json=body, timeout=60).json()
    assert result["ensemble"] == synchronous["ensemble"]
    assert [m["weight"] for m in result["ensemble"]["members"]] == [0.5, 0.5]


def test_request_weights_change_the_mix(server):
    body = {"n": 50, "seed": 6, "weights": [1, 0]}
    mix = requests.post(f"{server}/v1/models/ring8-mix/samples", json=body).json()
    assert [m["weight"] for m in mix["members"]] == [1, 0]
    seeds, _ = member_stream([1.0, 0.0], 50, 6)
    own = {"n": 50, "seed": seeds[0]}
    member = requests.post(f"{server}/v1/models/ring8-gan/samples", json=own).json()
    assert mix["samples"] == member["samples"]


@pytest.mark.parametrize(
    "model, weights, message",
    [
        ("ring8-mix", [0.5, 0.4], "divide each by their sum: ring8-gan:0.555556"),
        ("ring8-mix", [1.0], "a list of 2 numbers, one per member (ring8-gan, ring8-gan-b)"),
        ("ring8-mix", "even", "a list of 2 numbers"),
        ("ring8-mix", [True, False], "a list of 2 numbers"),
        ("ring8-mix", [1.5, -0.5], "must lie in [0, 1]"),
        ("ring8-mix", [0, 0], "the weights sum to 0; give at least one member weight 1"),
        ("ring8-gan", [1.0], "'weights': for ensembles only; ring8-gan is a gan"),
    ],
)
def test_bad_request_weights_are_400_problems_naming_the_fix(server, model, weights, message):
    body = {"n": 2, "weights": weights}
    for route in ("samples", "diagnose"):
        response = requests.post(f"{server}/v1/models/{model}/{route}", json=body)
        assert response.status_code == 400
        assert response.headers["Content-Type"] == "application/problem+json"
        assert message in response.json()["detail"]


def test_v2_refuses_an_ensemble_naming_the_v1_route(server):
    response = requests.post(f"{server}/v2/models/ring8-mix/infer", json={"inputs": []})
    assert response.status_code == 404
    assert "POST /v1/models/ring8-mix/samples" in response.json()["error"]


def test_score_fields_are_refused_for_an_ensemble(ensemble_repo):
    client = create_app(make_config(ensemble_repo)).test_client()
    response = client.post("/v1/models/ring8-mix/samples", json={"n": 2, "steps": 4})
    assert response.status_code == 400 and "an ensemble" in response.get_json()["detail"]
