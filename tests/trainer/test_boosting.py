"""`python -m trainer boost`: AdaGAN's reweighting (trainer/boosting.py) and the reweighted
pool a member trains on (trainer/datasets/weighted.py)."""

import json

import numpy as np
import pytest
import torch

from trainer.boosting import (
    density_ratios,
    mixture_after,
    next_beta,
    theory_star_weights,
)
from trainer.cli import main
from trainer.config import TrainConfig
from trainer.datasets import get_dataset
from trainer.datasets.weighted import WeightedPool, read_pool, write_pool


def solved_lambda(ratios: np.ndarray, beta: float) -> float:
    """lambda of sum_i (lambda - (1 - beta) h_i)_+ = N beta by bisection (eq. 18 solved the
    slow way)."""
    low, high = 0.0, beta * len(ratios) + (1 - beta) * ratios.max() + 1.0
    for _ in range(200):
        middle = (low + high) / 2
        total = np.maximum(middle - (1 - beta) * ratios, 0).sum()
        low, high = (middle, high) if total < len(ratios) * beta else (low, middle)
    return (low + high) / 2


@pytest.mark.parametrize("beta", [0.5, 1 / 3, 0.1])
def test_theory_star_weights_solve_the_papers_equation(beta: float) -> None:
    ratios = np.random.default_rng(1).exponential(2.0, 500) * (np.arange(500) % 3 > 0)
    weights = theory_star_weights(ratios, beta)
    expected = np.maximum(solved_lambda(ratios, beta) - (1 - beta) * ratios, 0) / (500 * beta)
    np.testing.assert_allclose(weights, expected / expected.sum(), rtol=1e-9, atol=1e-15)
    assert weights.sum() == pytest.approx(1.0)


def test_covered_points_lose_their_weight() -> None:
    # One member on one of 8 equal modes: h = 8 there, 0 elsewhere. With beta = 1/2 the
    # covered mode's points get nothing and the 7 others share the mass equally.
    ratios = np.where(np.arange(800) % 8 == 6, 8.0, 0.0)
    weights = theory_star_weights(ratios, 0.5)
    assert np.all(weights[np.arange(800) % 8 == 6] == 0)
    np.testing.assert_allclose(weights[np.arange(800) % 8 != 6], 1 / 700)
    np.testing.assert_allclose(theory_star_weights(np.full(50, 1.0), 0.25), 1 / 50)
    for beta in (1 / 3, 1 / 7, 0.1):  # ties everywhere: each interval is one point wide
        ratios = np.repeat([0.1, 0.7, 3.0], [333, 333, 334])
        weights = theory_star_weights(ratios, beta)
        expected = np.maximum(solved_lambda(ratios, beta) - (1 - beta) * ratios, 0)
        np.testing.assert_allclose(weights, expected / expected.sum(), rtol=1e-9, atol=1e-15)


def test_theory_star_weights_refuse_bad_input() -> None:
    for ratios, beta in (([1.0, -1.0], 0.5), ([1.0, np.inf], 0.5), ([1.0], 1.0), ([], 0.5)):
        with pytest.raises(ValueError, match="ratios"):
            theory_star_weights(np.array(ratios), beta)


def test_members_end_with_equal_weights() -> None:
    weights: list[float] = []
    for t in range(1, 5):
        weights = mixture_after(weights, next_beta(t))
    np.testing.assert_allclose(weights, 0.25)


def test_the_classifier_finds_the_covered_mode() -> None:
    # Fakes all on mode 6 of ring8: the reweighting drops mode 6's pool points and keeps the
    # rest (most of the mass on the 7 other modes).
    ring8 = get_dataset("ring8")
    pool, modes = ring8.sample_with_modes(4000, torch.Generator().manual_seed(0))
    collapsed = ring8.centres[6].float() + ring8.std * torch.randn(
        4000, 2, generator=torch.Generator().manual_seed(1)
    )
    weights = theory_star_weights(density_ratios(pool, collapsed, 0, steps=400), 0.5)
    on_six = (modes == 6).numpy()
    assert weights[on_six].sum() < 0.02
    shares = np.bincount(modes.numpy(), weights, minlength=8)
    assert np.all(np.delete(shares, 6) > 0.1)


def test_a_pool_draws_by_its_weights(tmp_path) -> None:
    points = np.arange(8, dtype=np.float32).reshape(4, 2)
    path = write_pool(tmp_path / "pool.npz", points, np.array([0.0, 1.0, 3.0, 0.0]))
    pool = WeightedPool.read(path, get_dataset("ring8"))
    drawn = pool.sample(4000, torch.Generator().manual_seed(0))
    counts = np.bincount(drawn[:, 0].numpy().astype(int) // 2, minlength=4)
    assert counts[0] == counts[3] == 0
    assert abs(counts[2] / 4000 - 0.75) < 0.03
    assert pool.name == "ring8" and pool.num_modes == 8  # evaluated against ring8 itself


def test_pool_files_are_checked(tmp_path) -> None:
    np.savez(tmp_path / "objects.npz", points=np.array([object()]), weights=np.ones(1))
    np.savez(tmp_path / "short.npz", points=np.zeros((3, 2), np.float32), weights=np.ones(2))
    (tmp_path / "text.npz").write_text("not an archive")
    for name in ("objects.npz", "short.npz", "text.npz", "missing.npz"):
        with pytest.raises(ValueError, match="data_weights"):
            read_pool(tmp_path / name)
    write_pool(tmp_path / "images.npz", np.zeros((3, 3, 8, 8)), np.ones(3))
    with pytest.raises(ValueError, match="not ring8's"):
        WeightedPool.read(tmp_path / "images.npz", get_dataset("ring8"))
    with pytest.raises(ValueError, match="classes 0"):
        TrainConfig(dataset="ring8", classes=8, data_weights=str(tmp_path / "images.npz"))


def test_boost_trains_members_on_reweighted_pools_and_exports_the_ensemble(tmp_path) -> None:
    out, models = tmp_path / "boost", tmp_path / "models"
    common = ["--members", "2", "--out", str(out), "--pool", "2000", "--steps", "40"]
    common += ["--classifier-steps", "30", "--eval-every", "0", "--no-progress"]
    assert (
        main(["boost", "ring8-gan", *common, "--name", "boosted", "--models-dir", str(models)]) == 0
    )
    summary = json.loads((out / "boost.json").read_text())
    assert summary["weights"] == [0.5, 0.5]
    first, second = summary["members"]
    assert (first["seed"], second["seed"]) == (0, 1)
    assert json.loads((out / "member0" / "config.json").read_text())["data_weights"] == ""
    pool_file = json.loads((out / "member1" / "config.json").read_text())["data_weights"]
    assert pool_file == str(out / "weights1.npz") and read_pool(pool_file)[0].shape == (2000, 2)
    assert 0 <= second["pool_dropped"] < 1 and 0 < second["pool_effective"] <= 1
    for entry in (first, second):
        assert sum(entry["mixture"]["histogram"]) <= 2500
    card = json.loads((models / "boosted" / "card.json").read_text())
    members = card["versions"][-1]["members"]
    assert [m["model"] for m in members] == ["boosted-m0", "boosted-m1"]
    assert [m["weight"] for m in members] == [0.5, 0.5]
    assert "ensemble" in card["diagnostics"]
    # Run again: the finished members and the pool are reused, nothing is trained anew.
    before = (out / "member1" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["boost", "ring8-gan", *common]) == 0
    assert (out / "member1" / "checkpoint.pt").stat().st_mtime_ns == before


def test_train_names_an_unreadable_pool_file(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "ring8-gan", "--data-weights", str(tmp_path / "none.npz"), "--steps", "1"])
    assert exit_info.value.code == 2
    assert "not a pool file" in capsys.readouterr().err
