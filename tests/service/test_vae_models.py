"""VAE decoders served like GANs: listed with their kind, seeded samples equal to the trainer's,
diagnosed, run through /v2, refused sampler fields, and members of an ensemble."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lab.noise import gaussian_latents
from service.app import create_app
from tests.helpers import make_config
from trainer.ensemble import MemberChoice, write_ensemble
from trainer.runs import train
from trainer.vae.config import VAEConfig
from trainer.vae.export import export_vae
from trainer.vae.training_loop import build, load_run

NAME = "ring8-vae"
NPY = {"Accept": "application/x-npy"}
TINY = {"hidden": 16, "depth": 2, "batch_size": 32, "steps": 20, "kl_warmup": 5}


@pytest.fixture(scope="module")
def vae_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(models, run dir): the tiny repository with a tiny ring8 VAE trained and exported by the
    trainer as `ring8-vae`, and the ensemble `ring8-gan-vae` of it and the tiny ring8 GAN."""
    root = tmp_path_factory.mktemp("vae")
    models = Path(shutil.copytree(model_repo, root / "models"))
    train(build, VAEConfig(**TINY), root / "run", progress=False)
    export_vae(root / "run", models, NAME)
    choices = [MemberChoice("ring8-gan", None, 0.5), MemberChoice(NAME, None, 0.5)]
    write_ensemble(models, "ring8-gan-vae", choices)
    return models, root / "run"


@pytest.fixture(scope="module")
def client(vae_repo):
    return create_app(make_config(vae_repo[0])).test_client()


def test_listed_ready_as_a_vae(client):
    model = client.get(f"/v1/models/{NAME}").get_json()
    assert model["ready"] and model["kind"] == "vae" and model["versions"] == [1]
    assert model["card"]["vae"]["decoder_output"] == "mean"


def test_samples_are_the_trainers_decoder_on_the_seeds_latents(client, vae_repo):
    response = client.post(f"/v1/models/{NAME}/samples", json={"n": 50, "seed": 4}, headers=NPY)
    assert response.status_code == 200
    served = np.load(io.BytesIO(response.data))
    expected = load_run(vae_repo[1]).samples(50, 4)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    again = client.post(f"/v1/models/{NAME}/samples", json={"n": 50, "seed": 4}, headers=NPY)
    assert again.data == response.data


def test_diagnose_reports_on_the_ring8_reference(client):
    response = client.post(f"/v1/models/{NAME}/diagnose", json={"n": 500, "seed": 0})
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["modes"]["total"] == 8 and report["n_samples"] == 500


def test_sampler_fields_are_refused_naming_the_kind(client):
    response = client.post(f"/v1/models/{NAME}/samples", json={"n": 4, "steps": 10})
    assert response.status_code == 400
    assert "ring8-vae is a vae, drawn in one pass" in response.get_json()["detail"]


def test_v2_infer_runs_the_decoder(client, vae_repo):
    z = gaussian_latents(3, 2, 0)
    inputs = [{"name": "z", "shape": [3, 2], "datatype": "FP32", "data": z.ravel().tolist()}]
    response = client.post(f"/v2/models/{NAME}/infer", data=json.dumps({"inputs": inputs}))
    assert response.status_code == 200, response.get_json()
    output = response.get_json()["outputs"][0]
    assert output["shape"] == [3, 2]
    decoder = load_run(vae_repo[1]).vae.decoder.eval()
    with torch.no_grad():
        expected = decoder(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(np.reshape(output["data"], (3, 2)), expected, atol=1e-5)


def test_an_ensemble_of_a_gan_and_a_vae_draws_from_both(client):
    response = client.post("/v1/models/ring8-gan-vae/diagnose", json={"n": 400, "seed": 1})
    assert response.status_code == 200, response.get_json()
    members = response.get_json()["ensemble"]["members"]
    assert [member["model"] for member in members] == ["ring8-gan", NAME]
    assert all(member["n"] > 100 for member in members)
