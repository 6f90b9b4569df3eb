"""Float16 graphs of exported GANs (trainer/half.py): computed in float16, float32 at the edges,
kept only within the dataset's tolerance."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from lab import runtime
from lab.noise import gaussian_latents
from trainer.cli import main
from trainer.half import half_precision, half_tolerance


def read_card(model_dir):
    return json.loads((model_dir / "card.json").read_text())


def test_export_adds_the_float16_graph(model_repo):
    model_dir = model_repo / "ring8-gan"
    (version,) = read_card(model_dir)["versions"]
    half = version["fp16"]
    assert half["file"] == "1/model-fp16.onnx"
    assert 0 < half["parity"]["max_abs_error"] <= half["parity"]["tolerance"] == 0.001
    graph = onnx.load(model_dir / half["file"]).graph
    assert {init.data_type for init in graph.initializer if init.dims} == {TensorProto.FLOAT16}
    edges = [*graph.input, *graph.output]
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in edges)


def test_float16_samples_are_close_but_not_equal(model_repo):
    model_dir = model_repo / "ring8-gan"
    version = read_card(model_dir)["versions"][0]
    z = gaussian_latents(500, 2, 7)
    full, half = (
        runtime.run_batched(runtime.create_session(model_dir / f, "cpu"), "z", z, 8192)
        for f in (version["file"], version["fp16"]["file"])
    )
    assert half.dtype == np.float32 and half.shape == full.shape
    assert 0 < np.abs(half - full).max() <= version["fp16"]["parity"]["tolerance"]


def test_image_generators_convert_too(tmp_path):
    from trainer.export import to_onnx
    from trainer.nets.dcgan import DCGANGenerator

    full = to_onnx(DCGANGenerator(latent_dim=8, channels=3, width=8).eval(), 8)
    onnx.save(full, tmp_path / "full.onnx")
    onnx.save(half_precision(full), tmp_path / "half.onnx")
    z = gaussian_latents(64, 8, 1)
    outputs = [
        runtime.run_batched(runtime.create_session(tmp_path / f, "cpu"), "z", z, 64)
        for f in ("full.onnx", "half.onnx")
    ]
    assert np.abs(outputs[0] - outputs[1]).max() <= half_tolerance("stacked-digits") == 0.01


def test_a_version_beyond_the_tolerance_keeps_no_file(model_repo, tmp_path, monkeypatch, capsys):
    import trainer.half as half

    model_dir = shutil.copytree(model_repo / "ring8-gan", tmp_path / "ring8-gan")
    monkeypatch.setattr(half, "MIXTURE_TOLERANCE", 1e-9)
    assert main(["half", str(model_dir)]) == 0
    assert "not kept" in capsys.readouterr().out
    assert "fp16" not in read_card(model_dir)["versions"][0]
    assert not (model_dir / "1" / "model-fp16.onnx").exists()


def test_cli_refuses_a_model_that_is_not_a_gan(model_repo, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["half", str(model_repo / "grid25-edm")])
    assert exit_info.value.code == 2
    assert "no gan or vae card" in capsys.readouterr().err
