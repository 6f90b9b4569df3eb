"""Exact and near duplicates, blockwise, and the birthday-paradox support estimate."""

import numpy as np
import pytest

from lab.diagnostics import DiagnosticsError
from lab.diagnostics.duplicates import (
    duplicates,
    exact_duplicates,
    near_duplicate_pairs,
    near_duplicate_threshold,
    support_estimate,
)


def test_exact_duplicates_counted() -> None:
    rows = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [0.0, 1.0], [5.0, 5.0], [2.0, 3.0]])
    assert exact_duplicates(rows) == {"exact_repeats": 3, "exact_fraction": 0.5, "exact_pairs": 4}


@pytest.mark.parametrize("block_size", [1, 7, 64, 4096])
def test_near_pairs_block_size_independent(block_size: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((40, 6))
    close = base[:10] + 1e-3 * rng.standard_normal((10, 6))  # 10 near pairs
    points = np.concatenate([base, close, base[:3]])  # 3 exact copies: 3 + 3 + 3 more pairs
    pairs, has_partner = near_duplicate_pairs(points, 0.05, block_size)
    assert pairs == 10 + 3 + 3  # base-close, base-copy, close-copy for rows 0..2
    assert has_partner.sum() == 10 + 10 + 3


def test_support_estimate_of_a_uniform_distribution() -> None:
    # n = 400 draws from S = 2000 one-hot points: E[pairs] = n (n-1) / (2 S) = 39.9.
    rng = np.random.default_rng(1)
    samples = np.eye(2000)[rng.integers(0, 2000, 400)]
    result = duplicates(samples, threshold=0.5)
    assert result["near_pairs"] == result["exact_pairs"]
    assert 1300 < result["support_estimate"] < 3000


def test_no_pairs_gives_a_lower_bound() -> None:
    result = duplicates(np.eye(30), threshold=0.5)
    assert result["support_estimate"] is None
    assert result["support_lower_bound"] == 30 * 29 / 2
    assert support_estimate(10, 3) == pytest.approx(15.0)


def test_reference_threshold_is_a_tenth_of_median_nn_distance() -> None:
    grid = np.array([[x, y] for x in range(5) for y in range(5)], dtype=np.float64)
    assert near_duplicate_threshold(grid[:3], reference=grid) == pytest.approx(0.1)


def test_collapsed_batch_is_all_duplicates() -> None:
    rng = np.random.default_rng(2)
    batch = np.repeat(rng.standard_normal((2, 5)), 50, axis=0)
    result = duplicates(batch, reference=rng.standard_normal((200, 5)))
    assert result["exact_fraction"] == pytest.approx(0.98)
    assert result["near_fraction"] == 1.0
    assert result["near_pairs"] == 2 * (50 * 49 // 2)


def test_rejects_single_row() -> None:
    with pytest.raises(DiagnosticsError, match="n >= 2"):
        duplicates(np.zeros((1, 3)))
