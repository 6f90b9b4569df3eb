"""`python -m trainer diagnose`: a card's diagnostics measured again from its own ONNX files."""

import json

import pytest

from trainer.cli import main


def read_card(model_dir):
    return json.loads((model_dir / "card.json").read_text())


@pytest.mark.parametrize("name", ["ring8-gan", "grid25-edm"])
def test_measuring_again_reproduces_the_export(repo_copy, capsys, name):
    model_dir = repo_copy / name
    before = read_card(model_dir)["diagnostics"]
    before_mtime = (model_dir / "card.json").stat().st_mtime_ns
    del before["verdict"]["reasons"][:]  # the rewrite must restore what is measured
    card = read_card(model_dir)
    card["diagnostics"] = before
    (model_dir / "card.json").write_text(json.dumps(card))
    assert main(["diagnose", str(model_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith(str(model_dir / "card.json"))
    after = read_card(model_dir)["diagnostics"]
    assert after["verdict"]["reasons"]
    assert (model_dir / "card.json").stat().st_mtime_ns != before_mtime
    for key in ("n", "seed", "kl", "high_quality_fraction", "modes", "features"):
        assert after[key] == before[key], key


def test_cli_refuses_a_reference(model_repo, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", str(model_repo / "ring8")])
    assert exit_info.value.code == 2
    assert "no gan, vae, score or ensemble card" in capsys.readouterr().err
