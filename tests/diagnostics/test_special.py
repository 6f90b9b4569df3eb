"""The incomplete gamma and chi-square functions against scipy, an independent reference."""

import numpy as np
import pytest
from scipy import special, stats

from lab.diagnostics.special import chi2_cdf, chi2_sf, gammainc_lower, gammainc_upper

SHAPES = [1e-3, 0.5, 1.0, 1.5, 3.0, 10.0, 49.5, 100.0, 250.0, 499.5]
POINTS = np.array(
    [
        0.0,
        1e-10,
        1e-3,
        0.1,
        0.5,
        1.0,
        2.0,
        5.0,
        10.0,
        30.0,
        100.0,
        300.0,
        499.0,
        500.0,
        600.0,
        1000.0,
        5000.0,
        1e5,
    ]
)
DOFS = [1, 2, 3, 4, 7, 10, 25, 100, 333, 998, 999]
RTOL, ATOL = 1e-9, 1e-300  # atol only matters for results that underflow to subnormals


@pytest.mark.parametrize("a", SHAPES)
def test_lower_matches_scipy(a: float) -> None:
    np.testing.assert_allclose(
        gammainc_lower(a, POINTS), special.gammainc(a, POINTS), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("a", SHAPES)
def test_upper_matches_scipy(a: float) -> None:
    np.testing.assert_allclose(
        gammainc_upper(a, POINTS), special.gammaincc(a, POINTS), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("dof", DOFS)
def test_chi2_cdf_matches_scipy(dof: int) -> None:
    points = np.concatenate([POINTS, dof * np.array([0.25, 0.9, 1.0, 1.1, 3.0, 10.0])])
    np.testing.assert_allclose(
        chi2_cdf(points, dof), stats.chi2.cdf(points, dof), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("dof", DOFS)
def test_chi2_sf_matches_scipy(dof: int) -> None:
    points = np.concatenate([POINTS, dof * np.array([0.25, 0.9, 1.0, 1.1, 3.0, 10.0])])
    np.testing.assert_allclose(
        chi2_sf(points, dof), stats.chi2.sf(points, dof), rtol=RTOL, atol=ATOL
    )


def test_scalar_inputs_give_a_python_float() -> None:
    assert type(chi2_cdf(9.0, 2)) is float
    assert chi2_cdf(9.0, 2) == pytest.approx(1.0 - np.exp(-4.5), rel=1e-14)


@pytest.mark.parametrize("x, cdf, sf", [(0.0, 0.0, 1.0), (-3.0, 0.0, 1.0), (np.inf, 1.0, 0.0)])
def test_chi2_edges(x: float, cdf: float, sf: float) -> None:
    assert (chi2_cdf(x, 3), chi2_sf(x, 3)) == (cdf, sf)


@pytest.mark.parametrize("a, x", [(0.0, 1.0), (-1.0, 1.0), (1.0, -0.5), (1.0, np.nan)])
def test_out_of_domain_raises(a: float, x: float) -> None:
    with pytest.raises(ValueError, match="a > 0 and x >= 0"):
        gammainc_lower(a, x)
