"""`python -m trainer import-generator`: declared latents, the checks that refuse a file that
does not match its declaration (exit 2, nothing written), and the imported card as the
service loads it."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lab.cards import card_latent, validate_card
from lab.noise import gaussian_latents, latents, uniform_latents
from service.config import REPO_MODELS
from service.repository import Repository
from tests.helpers import run_main
from trainer.cli import main

DIM = 4


def generator_file(
    path: Path,
    scale: float = 2.0,
    width: int = 2,
    batch: int | str = "N",
    ir: int = 10,
    z: str = "z",
) -> Path:
    """An ONNX generator z [batch, DIM] -> scale * tanh(z W) [batch, width], W fixed; its
    input named `z`."""
    weights = np.linspace(-1.0, 1.0, DIM * width, dtype=np.float32).reshape(DIM, width)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [z, "W"], ["h"]),
            helper.make_node("Tanh", ["h"], ["t"]),
            helper.make_node("Mul", ["t", "scale"], ["samples"]),
        ],
        "generator",
        [helper.make_tensor_value_info(z, TensorProto.FLOAT, [batch, DIM])],
        [helper.make_tensor_value_info("samples", TensorProto.FLOAT, [batch, width])],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = ir
    onnx.save(model, path)
    return path


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A repository holding only the ring8 reference."""
    shutil.copytree(REPO_MODELS / "ring8", tmp_path / "models" / "ring8")
    return tmp_path / "models"


def import_argv(source: Path, models: Path, *flags: str) -> list[str]:
    flags = flags or ("--latent", f"uniform:-1,1:{DIM}", "--value-range=-2,2")
    base = ["import-generator", str(source), "--name", "toy", "--output-shape", "2"]
    return [*base, "--reference", "ring8", "--models-dir", str(models), *flags]


def test_uniform_latents_are_seeded_float32_within_bounds() -> None:
    z = uniform_latents(1000, 3, 5, -1.0, 3.0)
    assert z.dtype == np.float32 and z.shape == (1000, 3)
    np.testing.assert_array_equal(z, uniform_latents(1000, 3, 5, -1.0, 3.0))
    assert not np.array_equal(z, uniform_latents(1000, 3, 6, -1.0, 3.0))
    assert -1.0 <= z.min() < -0.9 and 2.9 < z.max() <= 3.0
    assert abs(z.mean() - 1.0) < 0.1  # U[-1, 3] has mean 1 (std 1.15 / sqrt(3000) = 0.02)
    spec = {"distribution": "uniform", "low": -1.0, "high": 3.0, "dim": 3}
    np.testing.assert_array_equal(latents(spec, 1000, 5), z)


def test_a_card_without_latent_draws_the_standard_normal_as_before() -> None:
    card = json.loads((REPO_MODELS / "ring8-gan" / "card.json").read_text())
    assert card_latent(card) == {"distribution": "normal", "dim": 2}
    np.testing.assert_array_equal(latents(card_latent(card), 64, 7), gaussian_latents(64, 2, 7))


@pytest.mark.parametrize(
    "latent, message",
    [
        ({"distribution": "cauchy", "dim": 2}, "is not one of ['normal', 'uniform']"),
        ({"distribution": "uniform", "dim": 2}, "'low' is a required property"),
        ({"distribution": "uniform", "dim": 2, "low": 1, "high": 1}, "must be < high"),
        ({"distribution": "normal", "dim": 3}, "3 != latent_dim 2"),
    ],
)
def test_the_schema_refuses_a_bad_latent(latent: dict, message: str) -> None:
    card = json.loads((REPO_MODELS / "ring8-gan" / "card.json").read_text())
    with pytest.raises(ValueError, match="latent") as error:
        validate_card({**card, "latent": latent})
    assert message in str(error.value)


def test_a_trained_card_still_needs_its_training_config() -> None:
    card = json.loads((REPO_MODELS / "ring8-gan" / "card.json").read_text())
    del card["training"]
    with pytest.raises(ValueError, match="'training' is a required property"):
        validate_card(card)


def test_import_writes_a_card_the_service_serves(models: Path, tmp_path: Path, capsys) -> None:
    source = generator_file(tmp_path / "gen.onnx")
    status, out, err = run_main(import_argv(source, models), capsys)
    assert status == 0, err
    card = json.loads((models / "toy" / "card.json").read_text())
    validate_card(card)
    assert out.strip() == f"{card['diagnostics']['verdict']['status']}: {models}/toy/card.json"
    version = card["versions"][0]
    assert (version["file"], version["opset"], version["ir_version"]) == ("1/model.onnx", 18, 10)
    assert (models / "toy" / "1" / "model.onnx").read_bytes() == source.read_bytes()
    low, high = version["source"]["measured_range"]
    assert -2.0 <= low < high <= 2.0
    assert sorted(p.name for p in models.iterdir()) == ["ring8", "toy"]  # no staging left
    entry = Repository(models, "cpu").load().get("toy")
    assert entry.ready, entry.error
    assert run_main(import_argv(source, models), capsys)[0] == 0  # the same again: version 2
    card = json.loads((models / "toy" / "card.json").read_text())
    assert [v["version"] for v in card["versions"]] == [1, 2]


def test_dry_run_prints_the_card_and_writes_nothing(models: Path, tmp_path: Path, capsys):
    source = generator_file(tmp_path / "gen.onnx")
    status, out, _ = run_main(import_argv(source, models) + ["--dry-run"], capsys)
    assert status == 0
    assert json.loads(out)["latent"]["distribution"] == "uniform"
    assert [p.name for p in models.iterdir()] == ["ring8"]


def refusal(models: Path, argv: list[str], capsys) -> str:
    """The error of a refused import, after checking it is a usage error leaving models as it
    was."""
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "usage:" in err and "Traceback" not in err
    assert [p.name for p in models.iterdir()] == ["ring8"]
    return err


@pytest.mark.parametrize(
    "file_args, flags, message",
    [
        ({"width": 3}, (), "does not match --latent/--output-shape: ONNX samples shape"),
        ({"batch": 1}, (), "fixed batch axis"),
        ({"ir": 14}, (), "IR version 14; this onnxruntime loads at most 13"),
        ({"scale": 5.0}, (), "outside the declared value range [-2.0, 2.0]"),
        ({}, ("--latent", "normal:3"), "ONNX z shape ['N', 4] != card [-1, 3]"),
        ({}, ("--latent", "normal:4", "--value-range=0,1"), "outside the declared value range"),
    ],
)
def test_a_file_that_does_not_match_its_declaration_is_refused(
    models: Path, tmp_path: Path, capsys, file_args: dict, flags: tuple, message: str
) -> None:
    source = generator_file(tmp_path / "gen.onnx", **file_args)
    assert message in refusal(models, import_argv(source, models, *flags), capsys)


def test_other_bytes_are_not_an_onnx_model(models: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "gen.onnx"
    source.write_bytes(b"\x00\x01 not a protobuf at all \xff" * 10)
    assert "is not an ONNX model" in refusal(models, import_argv(source, models), capsys)


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--latent", "cauchy:4"), "expected normal:D or uniform:LOW,HIGH:D"),
        (("--latent", "uniform:1,-1:4"), "expected normal:D or uniform:LOW,HIGH:D"),
        (("--latent", "normal:4", "--reference", "ring9"), "unknown reference 'ring9'"),
        (("--latent", "normal:4", "--output-shape", "2,a"), "expected axes >= 1"),
        (("--latent", "normal:4", "--value-range=2,1"), "expected LOW,HIGH with LOW < HIGH"),
        (("--latent", "normal:4", "--output-shape", "3,8,8"), "judges samples of shape [2]"),
    ],
)
def test_bad_flags_are_usage_errors(models: Path, tmp_path: Path, capsys, flags, message):
    source = generator_file(tmp_path / "gen.onnx")
    assert message in refusal(models, import_argv(source, models, *flags), capsys)


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda folder, card: generator_file(folder / "1" / "model.onnx", scale=1.0), "sha256"),
        (lambda folder, card: card["input"].update(name="noise"), "'z' != card 'noise'"),
    ],
)
def test_a_file_that_no_longer_matches_its_card_is_not_ready(
    models: Path, tmp_path: Path, capsys, tamper, reason: str
) -> None:
    assert run_main(import_argv(generator_file(tmp_path / "gen.onnx"), models), capsys)[0] == 0
    folder = models / "toy"
    card = json.loads((folder / "card.json").read_text())
    tamper(folder, card)
    (folder / "card.json").write_text(json.dumps(card))
    entry = Repository(models, "cpu").load().get("toy")
    assert not entry.ready and reason in entry.error


def test_a_failure_after_the_checks_leaves_nothing_behind(
    models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> dict:
        raise RuntimeError("diagnostics failed")

    monkeypatch.setattr("trainer.imports.gan_diagnostics", broken)
    with pytest.raises(RuntimeError, match="diagnostics failed"):
        main(import_argv(generator_file(tmp_path / "gen.onnx"), models))
    assert [p.name for p in models.iterdir()] == ["ring8"]


def test_a_trained_model_of_that_name_is_not_replaced(models: Path, tmp_path: Path, capsys):
    shutil.copytree(REPO_MODELS / "ring8-gan", models / "toy")
    (models / "toy" / "card.json").write_text(
        (models / "toy" / "card.json").read_text().replace('"ring8-gan"', '"toy"')
    )
    before = sorted(p.name for p in (models / "toy").iterdir())
    status, _, err = run_main(import_argv(generator_file(tmp_path / "gen.onnx"), models), capsys)
    assert status == 2 and "already holds another kind of model" in err
    assert sorted(p.name for p in (models / "toy").iterdir()) == before
    assert sorted(p.name for p in models.iterdir()) == ["ring8", "toy"]


@pytest.mark.parametrize("flags", [(), ("--value-range=0,1",)])
def test_images_must_be_in_the_classifiers_value_range(tmp_path: Path, capsys, flags) -> None:
    models = tmp_path / "models"
    for name in ("stacked-digits", "digit-classifier"):  # the reference and the model it names
        shutil.copytree(REPO_MODELS / name, models / name)
    argv = ["import-generator", str(generator_file(tmp_path / "gen.onnx")), "--name", "toy"]
    argv += ["--latent", "normal:4", "--output-shape", "3,8,8", "--reference", "stacked-digits"]
    status, _, err = run_main([*argv, "--models-dir", str(models), *flags], capsys)
    assert status == 2 and "classifies images in [-1.0, 1.0]" in err
    assert "declare --value-range=-1.0,1.0" in err
    assert sorted(p.name for p in models.iterdir()) == ["digit-classifier", "stacked-digits"]


def test_an_imported_generator_gets_its_float16_graph(models: Path, tmp_path: Path, capsys):
    """`half` measures its parity on the card's input and declared latents; the service runs
    it."""
    source = generator_file(tmp_path / "gen.onnx", z="latent")
    assert run_main(import_argv(source, models), capsys)[0] == 0
    status, out, err = run_main(["half", str(models / "toy")], capsys)
    assert status == 0, err
    assert "1/model-fp16.onnx" in out and ": kept" in out
    card = json.loads((models / "toy" / "card.json").read_text())
    assert card["versions"][0]["fp16"]["parity"]["max_abs_error"] <= 1e-3
    entry = Repository(models, "cpu", fp16="on").load().get("toy")
    assert entry.ready and entry.versions[1].precision == "fp16", entry.error
