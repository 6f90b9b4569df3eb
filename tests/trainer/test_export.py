"""Export: the ONNX file runs with a dynamic batch, the card validates and describes it."""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from lab.noise import gaussian_latents
from trainer.datasets import get_dataset
from trainer.export import export_gan, export_reference, load_generator
from trainer.onnx_export import export_model
from trainer.training_loop import training_loop


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """(models_dir, card dict) after one export of the tiny run as `ring8-test`."""
    models_dir = tmp_path_factory.mktemp("models")
    card_path = export_gan(trained_run, models_dir, "ring8-test")
    assert card_path == models_dir / "ring8-test" / "card.json"
    return models_dir, json.loads(card_path.read_text())


def session_for(models_dir, card, index=-1) -> onnxruntime.InferenceSession:
    path = models_dir / card["name"] / card["versions"][index]["file"]
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_card_validates_against_the_schema(exported, card_validator):
    _, card = exported
    card_validator.validate(card)
    assert card["kind"] == "gan" and card["reference"] == "ring8" and card["dataset"] == "ring8"
    assert card["input"] == {"name": "z", "dtype": "float32", "shape": [-1, 2]}
    assert card["output"]["shape"] == [-1, 2] and card["output"]["value_range"] is None


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_runs_with_a_dynamic_batch_and_matches_torch(exported, trained_run, batch):
    models_dir, card = exported
    z = gaussian_latents(batch, card["latent_dim"], seed=3)
    (samples,) = session_for(models_dir, card).run(["samples"], {"z": z})
    assert samples.shape == (batch, 2) and samples.dtype == np.float32
    generator, _ = load_generator(trained_run)
    with torch.no_grad():
        expected = generator(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(samples, expected, atol=1e-4, rtol=0)


def test_version_entry_describes_the_file(exported):
    models_dir, card = exported
    (entry,) = card["versions"]
    path = models_dir / "ring8-test" / entry["file"]
    assert entry["version"] == 1 and entry["file"] == "1/model.onnx"
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    model = onnx.load(path)
    assert entry["ir_version"] == model.ir_version <= 10
    assert entry["opset"] == 18
    assert entry["parity"]["max_abs_error"] <= 1e-4 and entry["parity"]["n_inputs"] == 4096


def test_card_holds_rebuild_info_and_diagnostics(exported, tiny_config):
    _, card = exported
    assert card["training"] == tiny_config.to_dict()
    assert card["architecture"]["name"] == "mlp"
    assert card["architecture"]["args"]["g_hidden"] == tiny_config.g_hidden
    diagnostics = card["diagnostics"]
    assert (diagnostics["n"], diagnostics["seed"]) == (2500, 0)
    assert diagnostics["modes"]["total"] == 8


def test_a_second_export_adds_version_2_and_keeps_version_1(trained_run, tmp_path, card_validator):
    export_gan(trained_run, tmp_path, "twice")
    card = json.loads(export_gan(trained_run, tmp_path, "twice").read_text())
    card_validator.validate(card)
    assert [v["version"] for v in card["versions"]] == [1, 2]
    assert (tmp_path / "twice" / "1" / "model.onnx").is_file()
    with pytest.raises(ValueError, match="already exists"):
        export_gan(trained_run, tmp_path, "twice", version=2)


@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_export_reference_writes_a_valid_card(tmp_path, card_validator, dataset):
    card = json.loads(export_reference(dataset, tmp_path).read_text())
    card_validator.validate(card)
    assert card["kind"] == "reference" and card["name"] == dataset == card["dataset"]
    assert card["reference"]["centres"] == get_dataset(dataset).centres.tolist()
    assert card["reference"] == get_dataset(dataset).reference_spec()


def test_card_diagnostics_are_reproducible_from_service_latents(exported):
    from lab.diagnostics import diagnose

    models_dir, card = exported
    z = gaussian_latents(card["diagnostics"]["n"], card["latent_dim"], card["diagnostics"]["seed"])
    (samples,) = session_for(models_dir, card).run(["samples"], {"z": z})
    report = diagnose(samples, get_dataset("ring8").reference_spec(), "ring8")
    assert report["modes"] == card["diagnostics"]["modes"]
    assert report["kl"] == card["diagnostics"]["kl"]
    assert report["high_quality_fraction"] == card["diagnostics"]["high_quality_fraction"]


def test_export_model_removes_the_version_when_its_card_is_invalid(tmp_path: Path) -> None:
    def write_version(version_dir: Path, version: int) -> dict:
        version_dir.mkdir(parents=True)
        return {"version": version, "file": f"{version}/model.onnx"}

    def make_card(model_dir: Path, entry: dict, versions: list[dict]) -> dict:
        return {"schema_version": 1, "name": "broken", "kind": "gan"}  # no description

    with pytest.raises(ValueError, match="card.json invalid"):
        export_model(tmp_path, "broken", "gan", None, write_version, make_card)
    assert not (tmp_path / "broken" / "1").exists()
    assert not (tmp_path / "broken" / "card.json").exists()


def test_noise_injection_and_fourier_features_export_and_run(tiny_config, tmp_path):
    """A G with noise injection (its D with Fourier features) exports; onnxruntime gives what
    torch gives, and moving only the noise axes moves each sample by noise_scale times them."""
    config = dataclasses.replace(
        tiny_config, latent_dim=4, mitigations=("noise-injection", "fourier-features")
    )
    run_dir = tmp_path / "run"
    training_loop(config, run_dir, progress=False)
    card_path = export_gan(run_dir, tmp_path / "models", "ring8-noisy")
    card = json.loads(card_path.read_text())
    assert card["latent_dim"] == 4 and card["architecture"]["args"]["g_noise_injection"] is True
    generator, _ = load_generator(run_dir)
    scale = generator.noise_scale.detach().numpy()
    assert np.abs(scale).min() > 0  # trained away from its initial 0
    z = gaussian_latents(64, 4, seed=5)
    moved = z.copy()
    moved[:, 2:] += 1.0
    session = session_for(tmp_path / "models", card)
    (samples,) = session.run(["samples"], {"z": z})
    (shifted,) = session.run(["samples"], {"z": moved})
    with torch.no_grad():
        expected = generator(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(samples, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(shifted - samples, np.broadcast_to(scale, (64, 2)), atol=1e-5)
