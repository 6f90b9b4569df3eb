"""PacGAN's 2-D setup: packing by independent batches (pack_mode "batches"), the authors' nets
("pacgan-mlp": batch-norm G, maxout D), their presets, and the export of those nets."""

import dataclasses
import json

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from lab.noise import gaussian_latents
from tests.helpers import run_main
from trainer.config import TrainConfig
from trainer.distributed import check_shards
from trainer.export import export_gan, load_generator
from trainer.mitigations import packed_fakes
from trainer.nets import ARCHITECTURES
from trainer.nets.mlp import Maxout
from trainer.table import METHODS, PACGAN_PAPER_METHODS, plan
from trainer.training_loop import build, discriminator_step, training_loop

PAPER_PRESETS = [
    f"{benchmark}-pacgan-paper-{method}"
    for benchmark in ("ring8", "grid25")
    for method in ("gan", "pacgan2", "pacgan3", "pacgan4")
]


@pytest.fixture(scope="module")
def paper_config(tiny_config: TrainConfig) -> TrainConfig:
    """tiny_config with the authors' nets (small widths) and 3 independent packed batches."""
    return dataclasses.replace(
        tiny_config,
        arch="pacgan-mlp",
        maxout_pieces=3,
        mitigations=("pack",),
        pack=3,
        pack_mode="batches",
        beta1=0.8,
    )


@pytest.mark.parametrize("pack_mode, d_inputs", [("batches", 64), ("in-batch", 16)])
def test_d_sees_batch_size_packed_inputs_only_with_independent_batches(
    tiny_config, pack_mode, d_inputs
):
    config = dataclasses.replace(tiny_config, mitigations=("pack",), pack=4, pack_mode=pack_mode)
    state = build(config)
    _, real, fake, _ = discriminator_step(state)
    rows = 64 * 4 if pack_mode == "batches" else 64
    assert real.shape == fake.shape == (rows, 2)  # real and fake drawn the same way
    assert state.discriminator.body[0].in_features == 4 * 2  # m x data_dim
    assert state.discriminator.features(real).shape[0] == d_inputs
    assert state.discriminator(real).shape == state.discriminator(fake).shape == (d_inputs,)


def test_packed_fakes_put_the_jth_batch_at_the_jth_place_of_each_pack():
    z = torch.arange(24, dtype=torch.float32).reshape(12, 2)
    assert torch.equal(packed_fakes(nn.Identity(), z, 3), z)  # row i*m + j is z[i*m + j]
    assert torch.equal(packed_fakes(nn.Identity(), z, 1), z)


def test_packed_fakes_normalise_each_batch_on_its_own():
    # Batch j of z is offset by 10 j: only per-batch statistics centre every batch at 0.
    z = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    z += 10.0 * torch.arange(3).repeat(10).unsqueeze(1)
    fakes = packed_fakes(nn.BatchNorm1d(2, affine=False), z, 3)
    for j in range(3):
        assert fakes[j::3].mean(dim=0).abs().max() < 1e-5


def test_independent_batches_need_no_divisible_batch(tiny_config):
    config = dataclasses.replace(tiny_config, mitigations=("pack",), pack=3, pack_mode="batches")
    assert check_shards(config, 2) == 32
    with pytest.raises(ValueError, match="pack_mode 'batches'"):
        dataclasses.replace(config, pack_mode="in-batch")
    with pytest.raises(ValueError, match="unknown pack_mode 'nope'"):
        dataclasses.replace(config, pack_mode="nope")


def test_configs_from_before_pack_mode_resume_and_a_new_mode_does_not():
    current = TrainConfig(mitigations=("pack",))
    older = {k: v for k, v in current.to_dict().items() if k not in ("pack_mode", "maxout_pieces")}
    current.check_resumable(older)  # the defaults are the old recipe
    with pytest.raises(ValueError, match="pack_mode: 'in-batch' -> 'batches'"):
        dataclasses.replace(current, pack_mode="batches").check_resumable(older)


def test_maxout_is_the_max_over_pieces_of_affine_maps():
    torch.manual_seed(0)
    layer = Maxout(3, 4, pieces=5)
    h = torch.randn(7, 3)
    weight = layer.linear.weight.reshape(4, 5, 3)  # [out, pieces, in]
    bias = layer.linear.bias.reshape(4, 5)
    expected = (torch.einsum("opi,bi->bop", weight, h) + bias).amax(dim=2)
    torch.testing.assert_close(layer(h), expected)
    assert layer(h).shape == (7, 4)


def test_pacgan_mlp_is_the_authors_networks():
    torch.manual_seed(0)
    generator, discriminator = ARCHITECTURES.get("pacgan-mlp")(
        latent_dim=2, data_dim=2, g_hidden=400, g_depth=4, d_hidden=200, d_depth=3, d_pack=2
    )
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm1d)]
    hidden = [m for m in generator.net if isinstance(m, nn.Linear)][:-1]
    assert len(norms) == 4 and all(layer.bias is None for layer in hidden)
    units = [m for m in discriminator.body if isinstance(m, Maxout)]
    assert len(units) == 3 and all(unit.pieces == 5 for unit in units)
    assert units[0].linear.in_features == 2 * 2 and units[0].linear.out_features == 200 * 5
    weight = units[1].linear.weight  # 200,000 draws of N(0, 0.02^2)
    assert abs(weight.std().item() - 0.02) < 5e-4 and not units[1].linear.bias.any()


def test_paper_setup_trains_with_spectral_norm_and_minibatch_stddev(paper_config):
    config = dataclasses.replace(
        paper_config, mitigations=("pack", "spectral-norm", "minibatch-stddev")
    )
    state = build(config)
    losses = [state.train_step() for _ in range(3)]
    assert all(np.isfinite(list(r.values())).all() for r in losses)


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_paper_presets_resolve(preset, capsys):
    status, out, _ = run_main(["train", preset, "--dry-run"], capsys)
    config = json.loads(out)
    assert status == 0 and config["arch"] == "pacgan-mlp" and config["maxout_pieces"] == 5
    assert (config["lr_g"], config["lr_d"], config["beta1"]) == (1e-4, 1e-4, 0.8)
    assert (config["batch_size"], config["steps"]) == (100, 400_000)
    assert config["lr_schedule"] == "constant"
    m = int(preset[-1]) if preset[-1].isdigit() else 1
    assert config["mitigations"] == (["pack"] if m > 1 else [])
    if m > 1:
        assert config["pack"] == m and config["pack_mode"] == "batches"


def test_export_of_the_paper_nets_matches_torch_in_eval_mode(paper_config, tmp_path):
    run_dir = tmp_path / "run"
    training_loop(paper_config, run_dir, progress=False)
    card = json.loads(export_gan(run_dir, tmp_path / "models", "ring8-paper").read_text())
    assert card["architecture"]["name"] == "pacgan-mlp"
    assert card["architecture"]["args"]["d_maxout_pieces"] == 3
    generator, _ = load_generator(run_dir)
    norm = next(m for m in generator.modules() if isinstance(m, nn.BatchNorm1d))
    assert not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))  # trained
    path = tmp_path / "models" / "ring8-paper" / card["versions"][0]["file"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 9):  # eval-mode batch norm: a sample does not depend on its batch
        z = gaussian_latents(batch, 2, seed=batch)
        (samples,) = session.run(["samples"], {"z": z})
        with torch.no_grad():
            expected = generator(torch.from_numpy(z)).numpy()
        np.testing.assert_allclose(samples, expected, atol=1e-4, rtol=0)


def test_table_plans_the_paper_setup_only_when_named(tmp_path):
    runs = plan(["ring8", "grid25"], PACGAN_PAPER_METHODS, 1, tmp_path, {"ring8": {"steps": 7}})
    assert [(r.benchmark, r.config.pack, r.config.pack_mode) for r in runs[:4]] == [
        ("ring8", 2, "in-batch"),  # pacgan-paper-gan: no "pack", the field's default
        ("ring8", 2, "batches"),
        ("ring8", 3, "batches"),
        ("ring8", 4, "batches"),
    ]
    assert [r.config.steps for r in runs] == [7] * 4 + [400_000] * 4
    assert not set(PACGAN_PAPER_METHODS) & set(METHODS)  # the default table leaves them out
