"""VAEs in the trainer: the loss terms, the KL warmup, config and presets, resume, active latent
dimensions, the conv pair, and the decoder's export to a `vae` card."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from lab.cards import validate_card
from lab.noise import gaussian_latents
from trainer.cli import main
from trainer.diagnose import run_onnx
from trainer.nets import VAE_NETWORKS
from trainer.runs import train
from trainer.vae.config import VAEConfig, resolve_vae_config
from trainer.vae.export import export_vae
from trainer.vae.training_loop import (
    VAE,
    build,
    kl_weight,
    latent_health,
    load_run,
    negative_elbo_terms,
)

TINY = {"hidden": 16, "depth": 2, "batch_size": 32, "kl_warmup": 5, "snapshot_every": 10}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A ring8 run dir trained 20 steps with a tiny MLP pair (shared, read-only)."""
    run_dir = tmp_path_factory.mktemp("vae-run")
    train(build, VAEConfig(steps=20, log_every=5, eval_every=20, **TINY), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """(models_dir, card) of the tiny run exported as `ring8-vae-tiny`."""
    models_dir = tmp_path_factory.mktemp("models")
    path = export_vae(tiny_run, models_dir, "ring8-vae-tiny")
    return models_dir, json.loads(path.read_text())


def test_loss_terms_are_the_gaussian_nll_and_the_closed_form_kl():
    torch.manual_seed(0)
    encoder, decoder = VAE_NETWORKS.get("mlp")(latent_dim=3, data_dim=2, hidden=8, depth=1)
    vae = VAE(encoder, decoder, 1e-3)
    with torch.no_grad():
        vae.log_sigma.fill_(math.log(0.3))
    x, eps = torch.randn(5, 2), torch.randn(5, 3)
    reconstruction, kl = negative_elbo_terms(vae, x, eps)
    mu, log_var = encoder(x)
    posterior = torch.distributions.Normal(mu, torch.exp(0.5 * log_var))
    prior = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected_kl = torch.distributions.kl_divergence(posterior, prior).sum(dim=1).mean()
    mean = decoder(mu + torch.exp(0.5 * log_var) * eps)
    expected_nll = -torch.distributions.Normal(mean, 0.3).log_prob(x).sum(dim=1).mean()
    torch.testing.assert_close(kl, expected_kl)
    torch.testing.assert_close(reconstruction, expected_nll)


def test_decoder_std_is_floored():
    vae = VAE(*VAE_NETWORKS.get("mlp")(2, 2, 8, 1), min_decoder_std=0.05)
    with torch.no_grad():
        vae.log_sigma.fill_(-20.0)
    assert vae.decoder_std().item() == pytest.approx(0.05)


def test_kl_weight_rises_linearly_to_beta():
    config = VAEConfig(beta=4.0, kl_warmup=100)
    assert [kl_weight(config, step) for step in (0, 25, 100, 500)] == [0.0, 1.0, 4.0, 4.0]
    assert kl_weight(replace(config, kl_warmup=0), 0) == 4.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"arch": "dcgan"}, "unknown arch 'dcgan'"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"kl_warmup": -1}, "kl_warmup must be >= 0"),
        ({"latent_dim": 0}, "latent_dim must be >= 1"),
        ({"arch": "conv"}, "arch 'conv' does not fit 'ring8': use 'mlp' for the points of it"),
        ({"dataset": "digits"}, "arch 'mlp' does not fit 'digits': use 'conv' for it"),
    ],
)
def test_config_refuses_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        VAEConfig(**fields)


@pytest.mark.parametrize("preset", ["ring8-vae", "grid25-vae", "stacked-digits-vae"])
def test_presets_resolve_as_vaes(preset, capsys):
    assert main(["train", preset, "--dry-run", "--beta", "4"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["kind"] == "vae" and config["beta"] == 4.0
    assert config == resolve_vae_config(preset, {"beta": 4.0}).to_dict()


def test_cli_reports_a_conv_vae_on_points_as_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "ring8-vae", "--arch", "conv", "--run-dir", str(tmp_path / "run")])
    assert exit.value.code == 2
    assert "arch 'conv' does not fit 'ring8'" in capsys.readouterr().err


def test_resume_is_bit_exact(tmp_path):
    config = VAEConfig(steps=12, log_every=4, **TINY)
    straight = train(build, config, tmp_path / "straight", progress=False)
    train(build, replace(config, steps=6), tmp_path / "resumed", progress=False)
    resumed = train(build, config, tmp_path / "resumed", progress=False)
    for key, value in straight.vae.state_dict().items():
        torch.testing.assert_close(resumed.vae.state_dict()[key], value, rtol=0, atol=0)


def test_resume_refuses_another_beta(tiny_run):
    with pytest.raises(ValueError, match=r"beta: 1.0 -> 2.0"):
        train(build, VAEConfig(steps=30, beta=2.0, **TINY), tiny_run, progress=False)


def test_evaluation_logs_the_protocol_and_the_latent_health(tiny_run):
    evaluated = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    last = evaluated[-1]
    assert last["step"] == 20 and last["modes_total"] == 8 and "verdict" in last
    assert 0 <= last["active_dims"] <= 2 and len(last["latent_variances"]) == 2
    assert last["kl_weight"] == 1.0 and last["decoder_std"] > 0


class ScaledEncoder(torch.nn.Module):
    """q(z|x) with mu = scale * x and log_var = 0: a stand-in encoder of known posterior means."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        return self.scale * x, torch.zeros_like(x)


def test_active_dims_count_the_units_whose_mean_varies_with_x():
    state = build(VAEConfig(eval_samples=500, **TINY))
    state.vae.encoder = ScaledEncoder(1.0)  # mu = x: ring8's coordinates vary by 0.5 each
    assert latent_health(state)["active_dims"] == 2
    state.vae.encoder = ScaledEncoder(0.0)  # mu = 0 whatever x: the posterior is the prior
    health = latent_health(state)
    assert health["active_dims"] == 0 and health["latent_variances"] == [0.0, 0.0]


def test_conv_pair_maps_images_to_latents_and_back():
    encoder, decoder = VAE_NETWORKS.get("conv")(latent_dim=12, channels=3, width=8)
    mu, log_var = encoder(torch.rand(4, 3, 8, 8) * 2 - 1)
    assert mu.shape == log_var.shape == (4, 12)
    images = decoder(mu)
    assert images.shape == (4, 3, 8, 8) and images.abs().max() <= 1.0


def test_export_writes_a_valid_vae_card(exported):
    models_dir, card = exported
    validate_card(card)
    assert card["kind"] == "vae" and card["latent_dim"] == 2
    assert card["input"]["name"] == "z" and card["output"]["shape"] == [-1, 2]
    assert card["vae"]["beta"] == 1.0 and card["vae"]["decoder_output"] == "mean"
    assert 0 <= card["vae"]["active_dims"] <= 2
    assert card["diagnostics"]["n"] == 2500 and card["diagnostics"]["seed"] == 0
    assert card["versions"][0]["parity"]["max_abs_error"] <= 1e-4


def test_exported_decoder_draws_what_the_trainer_draws(exported, tiny_run):
    models_dir, card = exported
    state = load_run(tiny_run)
    z = gaussian_latents(64, 2, 3)
    served = run_onnx(models_dir / card["name"] / card["versions"][0]["file"], z)
    np.testing.assert_allclose(served, state.samples(64, 3), atol=1e-5)


def test_export_refuses_a_gan_card_of_the_same_name(exported, tiny_run):
    models_dir, _ = exported
    (models_dir / "taken").mkdir()
    card = json.loads((models_dir / "ring8-vae-tiny" / "card.json").read_text())
    (models_dir / "taken" / "card.json").write_text(json.dumps(card | {"kind": "gan"}))
    with pytest.raises(ValueError, match="holds a 'gan' card, not a vae model"):
        export_vae(tiny_run, models_dir, "taken")
