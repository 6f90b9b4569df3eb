"""Vendi score with the cosine kernel: 1 for identical rows, n for orthogonal ones."""

import numpy as np
import pytest

from lab.diagnostics import DiagnosticsError
from lab.diagnostics.vendi import vendi_score


def test_identical_rows_score_one() -> None:
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (50, 1))) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [1, 7, 40])
def test_orthogonal_rows_score_n(n: int) -> None:
    assert vendi_score(3.0 * np.eye(n)) == pytest.approx(n)


def test_gram_and_covariance_forms_agree() -> None:
    rng = np.random.default_rng(0)
    wide, tall = rng.standard_normal((20, 50)), rng.standard_normal((50, 20))
    # same eigenvalues for n < d (n x n Gram) and the d x d form of the transposed problem
    direct_wide = np.linalg.eigvalsh((w := wide / np.linalg.norm(wide, axis=1)[:, None]) @ w.T / 20)
    direct_wide = direct_wide[direct_wide > 1e-15]
    assert vendi_score(wide) == pytest.approx(np.exp(-np.sum(direct_wide * np.log(direct_wide))))
    assert 1.0 < vendi_score(tall) <= 20.0


def test_two_clusters_score_about_two() -> None:
    rows = np.repeat(np.eye(2), 100, axis=0)
    assert vendi_score(rows) == pytest.approx(2.0)


def test_subsample_is_seeded_and_capped() -> None:
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((500, 8))
    assert vendi_score(samples, max_samples=100, seed=2) == vendi_score(
        samples, max_samples=100, seed=2
    )
    assert vendi_score(np.eye(300), max_samples=100) == pytest.approx(100.0)


def test_rejects_zero_rows() -> None:
    with pytest.raises(DiagnosticsError, match="all-zero rows"):
        vendi_score(np.zeros((3, 2)))
