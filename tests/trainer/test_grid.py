"""`python -m trainer table --grid FIELD=V1,V2`: a hyperparameter axis in the same table."""

import json

import pytest

from tests.helpers import run_main
from trainer.cli import main
from trainer.grid import grid_settings, setting_name
from trainer.table import plan

TINY_RING8 = ["--benchmarks", "ring8", "--methods", "gan", "--seeds", "1", "--steps", "10"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """ring8-gan over lr_d = 1e-4, 2e-4, one seed of 10 steps each, then the same without a
    sweep beside it."""
    root = tmp_path_factory.mktemp("grid")
    out = ["--runs-dir", str(root / "runs"), "--out", str(root / "out")]
    assert main(["table", *TINY_RING8, "--grid", "lr_d=1e-4,2e-4", *out]) == 0
    return root


def test_each_value_is_a_row_of_the_same_table(swept):
    document = json.loads((swept / "out" / "collapse.json").read_text())
    assert [row["setting"] for row in document["rows"]] == ["lr_d=0.0001", "lr_d=0.0002"]
    assert [run["config"]["lr_d"] for run in document["runs"]] == [1e-4, 2e-4]
    assert [run["setting"] for run in document["runs"]] == [{"lr_d": 1e-4}, {"lr_d": 2e-4}]
    text = (swept / "out" / "collapse.md").read_text()
    assert "| GAN (non-saturating, no fix), lr_d=0.0001 | `ring8-gan` | 1 | 10 |" in text
    assert "| GAN (non-saturating, no fix), lr_d=0.0002 | `ring8-gan` | 1 | 10 |" in text


def test_each_value_trains_in_its_own_folder(swept):
    for value in ("0.0001", "0.0002"):
        config = swept / "runs" / "ring8" / "gan" / f"lr_d={value}" / "seed0" / "config.json"
        assert json.loads(config.read_text())["lr_d"] == float(value)


def test_the_rows_differ_only_by_the_swept_field(swept):
    first, second = json.loads((swept / "out" / "collapse.json").read_text())["runs"]
    differ = {k for k in first["config"] if first["config"][k] != second["config"][k]}
    assert differ == {"lr_d"}


def test_two_axes_make_their_product():
    settings = grid_settings([("lr_d", (1e-4, 2e-4)), ("batch_size", (32, 64))])
    assert [setting_name(s) for s in settings] == [
        "lr_d=0.0001,batch_size=32",
        "lr_d=0.0001,batch_size=64",
        "lr_d=0.0002,batch_size=32",
        "lr_d=0.0002,batch_size=64",
    ]
    assert grid_settings(None) == [()]


def test_a_field_of_another_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a setting of score-model presets"):
        plan(["ring8"], ["edm"], 1, tmp_path, None, [(("lr_d", 1e-4),)])


@pytest.mark.parametrize(
    ("axis", "message"),
    [
        ("lr_d", "expected FIELD=V1,V2"),
        ("lr_q=1,2", "unknown config field 'lr_q'"),
        ("lr_d=fast", "lr_d takes float values"),
        ("steps=10,10", "a value is repeated"),
        ("seed=1,2", "use --seeds"),
        ("mitigations=pack", "a method is a preset"),
    ],
)
def test_a_bad_axis_is_a_usage_error(axis, message, capsys):
    status, _, err = run_main(["table", *TINY_RING8, "--grid", axis], capsys)
    assert status == 2 and message in err


def test_the_same_field_twice_is_a_usage_error(tmp_path, capsys):
    argv = ["table", *TINY_RING8, "--grid", "lr_d=1e-4", "--grid", "lr_d=2e-4"]
    status, _, err = run_main([*argv, "--runs-dir", str(tmp_path)], capsys)
    assert status == 2 and "names lr_d twice" in err
