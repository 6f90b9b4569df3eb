"""The Python client and its command line against the real gunicorn (the tiny repository)."""

from pathlib import Path

import numpy as np
import pytest

from bench.server import running_server
from client import Client, ClientError
from client.__main__ import main

API_KEY = "client-test-key"


@pytest.fixture(scope="module")
def url(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("client")
    with running_server(model_repo, folder / "log.txt", DATA_DIR=str(folder / "data")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def ring8_batch(url: str) -> np.ndarray:
    return Client(url).samples("ring8-gan", 500, seed=3).array


def test_same_seed_same_samples_and_the_seed_echoed(url: str, ring8_batch: np.ndarray) -> None:
    drawn = Client(url).samples("ring8-gan", 500, seed=3)
    assert drawn.seed == 3 and drawn.version == 1 and drawn.array.dtype == np.float32
    np.testing.assert_array_equal(drawn.array, ring8_batch)


def test_a_drawn_seed_reproduces_its_samples(url: str) -> None:
    api = Client(url)
    drawn = api.samples("grid25-edm", 8, steps=4, sampler="euler")
    again = api.samples("grid25-edm", 8, seed=drawn.seed, steps=4, sampler="euler")
    np.testing.assert_array_equal(drawn.array, again.array)


def test_an_array_and_its_file_get_the_same_report(
    url: str, ring8_batch: np.ndarray, tmp_path: Path
) -> None:
    np.save(tmp_path / "batch.npy", ring8_batch)
    api = Client(url)
    from_array = api.diagnose(ring8_batch, reference="ring8")
    assert from_array == api.diagnose(tmp_path / "batch.npy", reference="ring8")
    assert from_array["reference"] == "ring8" and from_array["n_samples"] == 500


def test_diagnose_model_equals_samples_then_diagnose(url: str, ring8_batch: np.ndarray) -> None:
    api = Client(url)
    report = api.diagnose_model("ring8-gan", 500, seed=3)
    assert report["modes"] == api.diagnose(ring8_batch, reference="ring8")["modes"]


def test_a_reference_made_used_and_removed(url: str, ring8_batch: np.ndarray) -> None:
    api = Client(url)
    card = api.create_reference("client-made", ring8_batch)
    assert card["name"] == "client-made"
    assert "client-made" in {r["name"] for r in api.references()}
    assert api.diagnose(ring8_batch, reference="client-made")["reference"] == "client-made"
    api.delete_reference("client-made")
    assert "client-made" not in {r["name"] for r in api.references()}


def test_a_refused_call_raises_the_problem(url: str) -> None:
    with pytest.raises(ClientError) as raised:
        Client(url).samples("no-such-model", 10)
    assert raised.value.status == 404 and "no-such-model" in raised.value.detail
    assert raised.value.problem["status"] == 404


def test_the_api_key_is_sent(model_repo: Path, tmp_path: Path) -> None:
    with running_server(model_repo, tmp_path / "log.txt", API_KEY=API_KEY) as (url, _):
        with pytest.raises(ClientError) as raised:
            Client(url).models()
        assert raised.value.status == 401
        names = {model["name"] for model in Client(url, api_key=API_KEY).models()}
    assert {"ring8-gan", "grid25-edm"} <= names


def test_cli_prints_the_verdict_and_the_missing_modes(
    url: str, ring8_batch: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    np.save(tmp_path / "batch.npy", ring8_batch)
    assert (
        main(["--url", url, "diagnose", str(tmp_path / "batch.npy"), "--reference", "ring8"]) == 0
    )
    printed = capsys.readouterr().out
    report = Client(url).diagnose(ring8_batch, reference="ring8")
    assert f"verdict: {report['verdict']['status']}" in printed
    assert f"modes: {report['modes']['covered']} of 8 covered" in printed


def test_cli_writes_samples(url: str, ring8_batch: np.ndarray, tmp_path: Path) -> None:
    output = tmp_path / "drawn.npy"
    assert (
        main(["--url", url, "samples", "ring8-gan", "-n", "500", "--seed", "3", "-o", str(output)])
        == 0
    )
    np.testing.assert_array_equal(np.load(output), ring8_batch)


def test_cli_reports_a_refusal_and_a_missing_file(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    np.save(tmp_path / "batch.npy", np.zeros((10, 2), np.float32))
    argv = ["--url", url, "diagnose", str(tmp_path / "batch.npy"), "--reference", "nowhere"]
    assert main(argv) == 1
    assert "404" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["--url", url, "diagnose", str(tmp_path / "absent.npy")])
    assert usage.value.code == 2


def test_a_reference_names_its_classifier(url: str, ring8_batch: np.ndarray) -> None:
    """The field reaches the service: the tiny repository has no classifier model."""
    with pytest.raises(ClientError) as raised:
        Client(url).create_reference("never-made", ring8_batch, classifier="nope")
    assert raised.value.status == 404
    assert raised.value.detail == "no classifier named 'nope' (known: none)"


def test_a_samples_job_gives_the_samples_with_progress(url: str, ring8_batch: np.ndarray) -> None:
    api = Client(url)
    job = api.samples_job("ring8-gan", 500, seed=3)
    seen: list[dict] = []
    final = api.wait(job["id"], poll_s=0.05, timeout_s=60, progress=seen.append)
    assert final["state"] == "succeeded" and seen[-1] == final
    assert final["progress"] == {"done": 500, "total": 500, "fraction": 1.0}
    drawn = api.job_result(job["id"])
    assert drawn.seed == 3 and drawn.version == 1
    np.testing.assert_array_equal(drawn.array, ring8_batch)
    assert job["id"] in {listed["id"] for listed in api.jobs()}
    api.cancel_job(job["id"])  # finished: deleted
    with pytest.raises(ClientError) as refused:
        api.job(job["id"])
    assert refused.value.status == 404 and "JOB_TTL" in refused.value.detail


def test_diagnosis_jobs_give_the_reports(url: str, ring8_batch: np.ndarray) -> None:
    api = Client(url)
    upload = api.diagnose_job(ring8_batch, reference="ring8")
    assert api.wait(upload["id"], poll_s=0.05, timeout_s=60)["state"] == "succeeded"
    assert api.job_result(upload["id"]) == api.diagnose(ring8_batch, reference="ring8")
    model = api.diagnose_model_job("ring8-gan", 500, seed=3)
    api.wait(model["id"], poll_s=0.05, timeout_s=60)
    assert api.job_result(model["id"]) == api.diagnose_model("ring8-gan", 500, seed=3)
