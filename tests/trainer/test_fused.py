"""The fused trajectory graph: the whole sampler in one ONNX graph, the same samples."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lab import runtime
from lab.samplers import Churn, time_steps
from lab.sampling import (
    ScoreSpec,
    fused_score_samples,
    onnx_denoiser,
    score_samples,
    stepped_score_samples,
)
from trainer.cli import main
from trainer.edm.fused import fuse_trajectory, step_graph


def read_card(model_dir):
    return json.loads((model_dir / "card.json").read_text())


def test_export_adds_the_default_request_as_one_graph(model_repo):
    model_dir = model_repo / "grid25-edm"
    card = read_card(model_dir)
    (version,) = card["versions"]
    fused = version["fused"]
    assert (fused["sampler"], fused["steps"]) == (card["sampler"]["name"], card["sampler"]["steps"])
    assert fused["network_evaluations"] == card["sampler"]["network_evaluations"]
    assert fused["parity"]["max_abs_error"] <= 1e-5
    graph = onnx.load(model_dir / fused["file"]).graph
    denoiser = onnx.load(model_dir / version["file"]).graph
    weights = {init.name for init in denoiser.initializer}
    assert weights <= {init.name for init in graph.initializer}  # stored once, shared
    calls = sum(node.name.endswith(denoiser.node[0].name) for node in graph.node)
    assert calls == fused["network_evaluations"]


@pytest.mark.parametrize(("sampler", "steps"), [("heun", 18), ("heun", 5), ("euler", 7)])
def test_fused_samples_equal_the_step_by_step_sampler(model_repo, tmp_path, sampler, steps):
    model_dir = model_repo / "grid25-edm"
    card = read_card(model_dir)
    spec = ScoreSpec.from_card(card)
    path = model_dir / card["versions"][0]["file"]
    t = time_steps(steps, spec.sigma_min, spec.sigma_max, spec.rho)
    onnx.save(fuse_trajectory(onnx.load(path), t, sampler, spec.data_scale), tmp_path / "f.onnx")
    fused = runtime.create_session(tmp_path / "f.onnx", "cpu", large_graph=True)
    denoise = onnx_denoiser(runtime.create_session(path, "cpu"), card, 8192)
    for n, max_batch in ((1, 8192), (300, 128)):
        expected = score_samples(denoise, spec, n, 3, steps, sampler)
        actual = fused_score_samples(fused, spec, n, 3, max_batch)
        assert actual.dtype == np.float32 and actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def test_cli_fuses_other_steps_and_replaces_the_old_graph(model_repo, tmp_path, capsys):
    model_dir = shutil.copytree(model_repo / "grid25-edm", tmp_path / "grid25-edm")
    old = read_card(model_dir)["versions"][0]["fused"]["file"]
    assert main(["fuse", str(model_dir), "--steps", "6", "--sampler", "euler"]) == 0
    fused = read_card(model_dir)["versions"][0]["fused"]
    assert (fused["sampler"], fused["steps"], fused["network_evaluations"]) == ("euler", 6, 6)
    assert (model_dir / fused["file"]).is_file() and not (model_dir / old).exists()
    graphs = read_card(model_dir)["versions"][0]["step_graphs"]
    assert all((model_dir / graphs[s]["file"]).is_file() for s in ("euler", "heun"))
    assert str(model_dir / "card.json") in capsys.readouterr().out


def test_cli_refuses_a_model_that_is_not_a_score_model(model_repo, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fuse", str(model_repo / "ring8-gan")])
    assert exit_info.value.code == 2
    assert "no score model card" in capsys.readouterr().err


def test_a_denoiser_with_control_flow_is_refused():
    branch = helper.make_graph([], "branch", [], [helper.make_tensor_value_info("x", 1, [1])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"]) for name in ("x", "s")
    ]
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])]
    )
    with pytest.raises(ValueError, match="control flow"):
        fuse_trajectory(helper.make_model(graph), np.array([1.0, 0.0]), "euler", 1.0)


def test_export_adds_the_step_graphs(model_repo):
    model_dir = model_repo / "grid25-edm"
    (version,) = read_card(model_dir)["versions"]
    graphs = version["step_graphs"]
    assert graphs["parity"]["max_abs_error"] <= 1e-5
    assert [r["churn"] > 0 for r in graphs["parity"]["requests"]] == [False, False, True]
    denoiser = onnx.load(model_dir / version["file"]).graph
    for sampler, evaluations in (("euler", 1), ("heun", 2)):
        graph = onnx.load(model_dir / graphs[sampler]["file"]).graph
        assert [t.name for t in graph.input] == [
            "x",
            "noise",
            "noise_scale",
            "t_hat",
            "t_next",
            "step",
        ]
        calls = sum(node.name.endswith(denoiser.node[0].name) for node in graph.node)
        assert calls == evaluations


@pytest.mark.parametrize(
    ("sampler", "steps", "churn"), [("heun", 18, 0.0), ("euler", 7, 0.0), ("heun", 10, 30.0)]
)
def test_stepped_samples_equal_the_numpy_sampler(model_repo, tmp_path, sampler, steps, churn):
    model_dir = model_repo / "grid25-edm"
    card = read_card(model_dir)
    spec = ScoreSpec.from_card(card)
    path = model_dir / card["versions"][0]["file"]
    steppers = {}
    for name in ("euler", "heun"):
        onnx.save(step_graph(onnx.load(path), name), tmp_path / f"{name}.onnx")
        steppers[name] = runtime.create_session(tmp_path / f"{name}.onnx", "cpu")
    denoise = onnx_denoiser(runtime.create_session(path, "cpu"), card, 8192)
    for n, max_batch in ((1, 8192), (300, 128)):
        request = (spec, n, 3, steps, sampler, Churn(churn))
        expected = score_samples(denoise, *request)
        actual = stepped_score_samples(steppers, *request, max_batch=max_batch)
        assert actual.dtype == np.float32 and actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def test_a_failed_step_parity_leaves_no_file(model_repo, tmp_path, monkeypatch):
    import trainer.edm.fused as fused

    model_dir = shutil.copytree(model_repo / "grid25-edm", tmp_path / "grid25-edm")
    card = read_card(model_dir)
    version = card["versions"][0]
    for graph in ("euler", "heun"):
        (model_dir / version["step_graphs"][graph]["file"]).unlink()
    monkeypatch.setattr(fused, "STEP_PARITY_TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="step graph parity failed"):
        fused.step_version(model_dir, card, version)
    assert not list(model_dir.glob("*/step-*.onnx"))
