"""EDM score models in the trainer: preconditioning, loss, EMA, config, loop, export."""

import json
import math

import numpy as np
import onnxruntime
import pytest
import torch

from lab.sampling import ScoreSpec, onnx_denoiser, score_samples
from trainer.cli import main
from trainer.datasets import get_dataset
from trainer.edm.config import ScoreConfig, resolve_score_config
from trainer.edm.export import export_score
from trainer.edm.precond import Denoiser, edm_loss, loss_weight, preconditioning
from trainer.edm.training_loop import (
    build,
    data_scale,
    evaluate_score_run,
    load_run,
    score_training_loop,
    torch_denoiser,
)
from trainer.nets import SCORE_NETWORKS
from trainer.runs import update_ema

TINY = {"width": 16, "depth": 1, "sigma_max": 10.0, "batch_size": 64, "snapshot_every": 10}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run dir trained 20 steps on grid25 with a tiny MLP (shared, read-only)."""
    run_dir = tmp_path_factory.mktemp("edm-run")
    config = ScoreConfig(dataset="grid25", steps=20, log_every=5, input_frequencies=2, **TINY)
    score_training_loop(config, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """(models_dir, card) of the tiny run exported as `grid25-tiny`."""
    models_dir = tmp_path_factory.mktemp("models")
    path = export_score(tiny_run, models_dir, "grid25-tiny")
    return models_dir, json.loads(path.read_text())


@pytest.mark.parametrize("sigma", [0.002, 0.5, 80.0])
def test_preconditioning_matches_table_1(sigma):
    sigma_data = 0.5
    c_skip, c_out, c_in, c_noise = preconditioning(torch.tensor([sigma], dtype=torch.float64), 0.5)
    total = sigma**2 + sigma_data**2
    assert c_skip.item() == pytest.approx(sigma_data**2 / total)
    assert c_out.item() == pytest.approx(sigma * sigma_data / math.sqrt(total))
    assert c_in.item() == pytest.approx(1 / math.sqrt(total))
    assert c_noise.item() == pytest.approx(math.log(sigma) / 4)


def test_loss_weight_makes_the_effective_weight_one():
    """lambda(sigma) c_out(sigma)^2 = 1 (EDM Eq. 8): every noise level weighs the same on F."""
    sigma = torch.logspace(-3, 2, 50, dtype=torch.float64)
    _, c_out, _, _ = preconditioning(sigma, 0.5)
    torch.testing.assert_close(loss_weight(sigma, 0.5) * c_out**2, torch.ones_like(sigma))


def test_untrained_denoiser_is_c_skip_times_x():
    """F's output layer starts at zero, so D(x, sigma) = c_skip(sigma) x before training."""
    denoiser = Denoiser(SCORE_NETWORKS.get("mlp")(2, 16, 1, 3), 0.5)
    x, sigma = torch.randn(6, 2), torch.tensor([0.01, 0.1, 0.5, 1.0, 5.0, 80.0])
    c_skip = 0.25 / (sigma**2 + 0.25)
    torch.testing.assert_close(denoiser(x, sigma), c_skip[:, None] * x)


def test_unet_keeps_the_image_shape_and_group_norms_divide():
    for channels in (1, 3):
        network = SCORE_NETWORKS.get("unet")(channels, 24)
        out = Denoiser(network, 0.5)(torch.randn(2, channels, 8, 8), torch.tensor([0.1, 3.0]))
        assert out.shape == (2, channels, 8, 8)
        norms = [m for m in network.modules() if isinstance(m, torch.nn.GroupNorm)]
        assert norms and all(m.num_channels % m.num_groups == 0 for m in norms)


def test_loss_is_finite_and_decreases():
    """The loss on one fixed batch (fixed sigma and noise) drops with training."""
    state = build(ScoreConfig(dataset="ring8", steps=200, lr=1e-2, **TINY))
    y = state.dataset.sample(4096, torch.Generator().manual_seed(1)) * state.data_scale

    def fixed_loss() -> float:
        with torch.no_grad():
            generator = torch.Generator().manual_seed(2)
            return edm_loss(state.denoiser, y, -1.2, 1.2, generator).item()

    before = fixed_loss()
    losses = [state.train_step()["loss"] for _ in range(200)]
    assert all(math.isfinite(loss) for loss in losses)
    assert fixed_loss() < 0.95 * before


def test_edm_loss_uses_only_its_generator():
    state = build(ScoreConfig(dataset="ring8", **TINY))
    y = torch.zeros(8, 2)
    first, again = (
        edm_loss(state.denoiser, y, -1.2, 1.2, torch.Generator().manual_seed(3)) for _ in "ab"
    )
    assert first.item() == again.item()


def test_update_ema_is_the_exponential_average():
    model, ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, model, 0.9)
    for averaged, old, current in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(averaged, 0.9 * old + 0.1 * current)


def test_data_scale_brings_the_mixture_to_sigma_data():
    dataset = get_dataset("grid25")
    points = dataset.sample(200_000, torch.Generator().manual_seed(0)) * data_scale(dataset, 0.5)
    assert points.std(dim=0).mean().item() == pytest.approx(0.5, rel=0.01)
    assert data_scale(get_dataset("digits"), 0.5) == 1.0


def test_config_resolution_and_errors():
    config = resolve_score_config("ring8-edm", {"steps": 7, "p_mean": None})
    assert config.kind == "score" and config.steps == 7 and config.dataset == "ring8"
    assert isinstance(config.sigma_max, float)
    with pytest.raises(ValueError, match="unknown config keys"):
        resolve_score_config("ring8-edm", {"lr_g": 0.1})
    with pytest.raises(ValueError, match="unknown sampler"):
        ScoreConfig(sampler="dpm")
    with pytest.raises(ValueError, match="sigma_max must exceed"):
        ScoreConfig(sigma_min=1.0, sigma_max=0.5)


def test_resume_is_bit_exact(tmp_path):
    config = ScoreConfig(dataset="ring8", steps=12, lr_schedule="constant", **TINY)
    straight = score_training_loop(config, tmp_path / "straight", progress=False)
    half = ScoreConfig(**{**config.to_dict(), "steps": 6})
    score_training_loop(half, tmp_path / "resumed", progress=False)
    resumed = score_training_loop(config, tmp_path / "resumed", progress=False)
    for a, b in zip(straight.ema.parameters(), resumed.ema.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [6, 12]


def test_card_validates_and_describes_the_denoiser(exported, card_validator):
    _, card = exported
    card_validator.validate(card)
    assert card["kind"] == "score" and card["reference"] == card["dataset"] == "grid25"
    assert card["input"] == {"name": "x", "dtype": "float32", "shape": [-1, 2]}
    assert card["sigma_input"] == {"name": "sigma", "dtype": "float32", "shape": [-1]}
    assert card["sampler"]["name"] == "heun" and card["sampler"]["steps"] == 18
    assert card["sampler"]["network_evaluations"] == 35
    assert card["diagnostics"]["n"] == 2500 and card["diagnostics"]["seed"] == 1


def test_parity_per_call_and_along_a_trajectory(exported):
    _, card = exported
    parity = card["versions"][0]["parity"]
    assert parity["max_abs_error"] <= 1e-4 and parity["n_inputs"] == 4096
    trajectory = parity["trajectory"]
    assert trajectory["steps"] == 18 and trajectory["sampler"] == "heun"
    assert trajectory["max_abs_error"] <= 1e-3


def test_onnx_sigma_is_a_per_sample_input(exported, tiny_run):
    """One batch with mixed noise levels equals torch row by row (sigma is not frozen)."""
    models_dir, card = exported
    session = onnxruntime.InferenceSession(
        str(models_dir / "grid25-tiny" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    sigma = np.array([0.002, 0.05, 0.5, 3.0, 10.0], dtype=np.float32)
    (denoised,) = session.run(["denoised"], {"x": x, "sigma": sigma})
    expected = torch_denoiser(load_run(tiny_run).ema)(x, sigma)
    np.testing.assert_allclose(denoised, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(denoised[:1], session.run(None, {"x": x[:1], "sigma": sigma[1:2]})[0])


def test_card_diagnostics_are_the_service_samplers(exported):
    """The export-time report is reproduced by the service's sampler over the exported file."""
    from lab.diagnostics import diagnose

    models_dir, card = exported
    session = onnxruntime.InferenceSession(
        str(models_dir / "grid25-tiny" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    samples = score_samples(
        onnx_denoiser(session, card, 8192), ScoreSpec.from_card(card), 2500, 1, 18, "heun"
    )
    report = diagnose(samples, get_dataset("grid25").reference_spec(), "grid25")
    assert report["modes"] == card["diagnostics"]["modes"]
    assert report["high_quality_fraction"] == card["diagnostics"]["high_quality_fraction"]


def test_evaluate_score_run_reports_the_protocol(tiny_run):
    result = evaluate_score_run(tiny_run, n=500)
    protocol = {"modes_covered", "modes_total", "high_quality_fraction", "kl", "nfe"}
    monitored = {"modes_expected", "modes_expected_std", "verdict", "verdict_reasons"}
    assert set(result) == protocol | monitored | {"verdict_rules", "kl_exact"}
    assert result["verdict_rules"] == "modes"  # the monitor's evaluation: no k-NN report
    assert result["modes_total"] == 25 and result["nfe"] == 35


def test_export_refuses_a_gan_card_name(exported, tiny_run):
    models_dir, _ = exported
    (models_dir / "taken").mkdir()
    (models_dir / "taken" / "card.json").write_text(json.dumps({"kind": "gan"}))
    with pytest.raises(ValueError, match="not a score model"):
        export_score(tiny_run, models_dir, "taken")


def test_cli_dry_run_resolves_a_score_preset(capsys):
    assert main(["train", "grid25-edm", "--steps", "5", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["kind"] == "score" and config["steps"] == 5 and config["dataset"] == "grid25"


def test_cli_refuses_gan_flags_for_a_score_preset(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "grid25-edm", "--lr-g", "0.1", "--dry-run"])
    assert exit_info.value.code == 2
    assert "lr_g (GAN): settings not used by score presets" in capsys.readouterr().err


@pytest.mark.slow  # ~25 s on an idle 2-core CPU: U-Net trajectories and the classifier report
def test_image_score_model_exports_with_classifier_diagnostics(tmp_path, card_validator):
    """A tiny U-Net on digits: the card describes [1, 8, 8] images in [-1, 1], and its
    diagnostics come from the classifier reference of the models folder it is exported to."""
    import shutil

    from service.config import REPO_MODELS

    models_dir = tmp_path / "models"
    for name in ("digits", "digit-classifier"):  # the reference and the classifier it names
        shutil.copytree(REPO_MODELS / name, models_dir / name)
    config = resolve_score_config("digits-edm", {"steps": 2, "width": 8, "snapshot_every": 1})
    score_training_loop(config, tmp_path / "run", progress=False)
    card = json.loads(export_score(tmp_path / "run", models_dir, "digits-tiny").read_text())
    card_validator.validate(card)
    assert card["input"]["shape"] == [-1, 1, 8, 8] and card["value_range"] == [-1.0, 1.0]
    assert card["architecture"] == {"name": "unet", "args": {"channels": 1, "width": 8}}
    assert card["diagnostics"]["modes"]["total"] == 10 and card["data_scale"] == 1.0
    assert card["versions"][0]["parity"]["trajectory"]["max_abs_error"] <= 1e-3


def test_cli_export_dispatches_score_runs(tiny_run, tmp_path, capsys):
    assert (
        main(["export", str(tiny_run), "--name", "grid25-cli", "--models-dir", str(tmp_path)]) == 0
    )
    card = json.loads((tmp_path / "grid25-cli" / "card.json").read_text())
    assert card["kind"] == "score" and capsys.readouterr().out.strip().endswith("card.json")


def test_data_scale_counts_only_the_noisy_axes():
    """veegan1200: noise on 700 of 1200 axes, so the per-axis variance is the shifts' spread
    plus 700/1200 of the noise's."""
    dataset = get_dataset("veegan1200")
    points = dataset.sample(20_000, torch.Generator().manual_seed(0)) * data_scale(dataset, 0.5)
    assert points.var(dim=0).mean().sqrt().item() == pytest.approx(0.5, rel=0.02)


def test_axis_gain_adds_a_per_axis_noise_conditioned_path():
    torch.manual_seed(0)
    plain = SCORE_NETWORKS.get("mlp")(data_dim=6, width=8, depth=1)
    torch.manual_seed(0)
    gained = SCORE_NETWORKS.get("mlp")(data_dim=6, width=8, depth=1, axis_gain=1)
    x, c_noise = torch.randn(5, 6), torch.randn(5)
    torch.testing.assert_close(gained(x, c_noise), plain(x, c_noise))  # the gain starts at 0
    with torch.no_grad():
        gained.gain.bias.copy_(torch.arange(6.0))
    torch.testing.assert_close(gained(x, c_noise), plain(x, c_noise) + torch.arange(6.0) * x)
    assert plain.gain is None


def test_axis_gain_is_validated_and_recorded_only_where_set(tmp_path, card_validator):
    with pytest.raises(ValueError, match="axis_gain is 0 or 1"):
        ScoreConfig(axis_gain=2)
    with pytest.raises(ValueError, match="axis_gain is an 'mlp' option"):
        ScoreConfig(dataset="digits", arch="unet", axis_gain=1)
    config = ScoreConfig(dataset="veegan1200", steps=4, axis_gain=1, eval_samples=200, **TINY)
    score_training_loop(config, tmp_path / "run", progress=False)
    card = json.loads(export_score(tmp_path / "run", tmp_path / "models", "v-tiny").read_text())
    card_validator.validate(card)
    assert card["architecture"]["args"]["axis_gain"] == 1
    assert card["versions"][0]["parity"]["max_abs_error"] <= 1e-4
    assert "axis_gain" not in build(ScoreConfig(**TINY)).architecture["args"]
