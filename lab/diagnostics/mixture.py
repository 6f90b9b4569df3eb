"""Gaussian-mixture references and the mode-counting protocol of the GAN mode-collapse papers.

Protocol (Metz et al. 2017, Unrolled GAN; Srivastava et al. 2017, VEEGAN, section 5.1;
Lin et al. 2018, PacGAN, section 5): a sample is *high quality* when it lies within 3 std of
its nearest centre; a mode is *captured* when it is the nearest centre of at least one
high-quality sample; the mode histogram counts the high-quality samples per mode.

A reference may set another radius (`high_quality_stds`) and keep the noise to its first
`noise_dims` axes (VEEGAN's 1200-D mixture: 700 noisy axes, 500 constant ones). In high
dimension a fixed radius of 3 std excludes every exact draw (the noise norm grows like the
square root of the noisy axes), so such a reference states the radius its protocol uses.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from .blocks import DEFAULT_BLOCK_SIZE, nearest_centres
from .errors import DiagnosticsError
from .special import chi2_cdf

HIGH_QUALITY_STDS = 3.0  # "within 3 standard deviations of its nearest mode" (VEEGAN, PacGAN)
_PAIR_BLOCK_ELEMENTS = 1 << 20  # mode pairs per block in expected_coverage_ideal


@dataclass(frozen=True)
class GaussianMixture:
    """An isotropic Gaussian mixture: mode k is N(centres[k], std^2 I) with weight weights[k].

    centres: float64 [K, d]; std: float > 0 (same units as the samples);
    weights: float64 [K], >= 0, normalised to sum 1; noise_dims: the axes 0..m-1 that carry
    the noise (the others hold the centre's value exactly), d by default;
    high_quality_stds: the high-quality radius in std (the papers' 3 by default).
    """

    centres: np.ndarray
    std: float
    weights: np.ndarray
    noise_dims: int | None = None
    high_quality_stds: float = HIGH_QUALITY_STDS

    @property
    def dim(self) -> int:
        """d, the dimension of a sample."""
        return int(self.centres.shape[1])

    @property
    def n_modes(self) -> int:
        """K, the number of centres (modes of weight 0 included)."""
        return int(self.centres.shape[0])

    @property
    def noisy_axes(self) -> int:
        """m, the axes that carry the noise (d unless the reference sets noise_dims)."""
        return self.dim if self.noise_dims is None else self.noise_dims

    @property
    def high_quality_radius(self) -> float:
        """The high-quality radius in sample units: high_quality_stds * std."""
        return self.high_quality_stds * self.std

    def high_quality_probability(self) -> float:
        """q: the chance that an exact draw lies within the radius of its own centre."""
        return high_quality_probability(self.noisy_axes, self.high_quality_stds)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "GaussianMixture":
        """Build from a reference card's `reference` object; DiagnosticsError when invalid.

        spec: {"type": "gaussian_mixture", "dim": d, "centres": [[...], ...] (K x d),
        "std": s > 0, "weights": [K numbers >= 0 with a positive sum]}, and optionally
        "noise_dims": an integer in 1..d and "high_quality_stds": a number > 0.
        """
        if not isinstance(spec, dict) or spec.get("type") != "gaussian_mixture":
            kind = spec.get("type") if isinstance(spec, dict) else type(spec).__name__
            raise DiagnosticsError(f"unsupported reference type {kind!r}: need 'gaussian_mixture'")
        missing = [key for key in ("dim", "centres", "std", "weights") if key not in spec]
        if missing:
            raise DiagnosticsError(f"gaussian_mixture reference lacks {', '.join(missing)}")
        centres = _float_array(spec["centres"], "centres", ndim=2)
        weights = _float_array(spec["weights"], "weights", ndim=1)
        std = _float_array(spec["std"], "std", ndim=0)
        _check_geometry(spec["dim"], centres, weights, float(std))
        noise_dims = _noise_dims(spec.get("noise_dims"), spec["dim"])
        stds = _high_quality_stds(spec.get("high_quality_stds", HIGH_QUALITY_STDS))
        weights = weights / weights.sum()
        centres.setflags(write=False)
        weights.setflags(write=False)
        return cls(centres, float(std), weights, noise_dims, stds)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """n exact draws, float64 [n, d], from numpy's PCG64(seed): mode ~ weights, then noise
        on the noisy axes."""
        rng = np.random.Generator(np.random.PCG64(seed))
        modes = rng.choice(self.n_modes, size=n, p=self.weights)
        draws = self.centres[modes]
        draws[:, : self.noisy_axes] += self.std * rng.standard_normal((n, self.noisy_axes))
        return draws


def _noise_dims(value: Any, dim: int) -> int | None:
    """A spec's noise_dims (None when absent), or DiagnosticsError unless an integer in 1..dim."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= dim:
        raise DiagnosticsError(
            f"reference noise_dims must be an integer from 1 to dim ({dim}), got {value!r}"
        )
    return value


def _high_quality_stds(value: Any) -> float:
    """A spec's high_quality_stds as a float, or DiagnosticsError unless a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DiagnosticsError(f"reference high_quality_stds must be a number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise DiagnosticsError(f"reference high_quality_stds must be finite and > 0, got {value}")
    return float(value)


def _float_array(value: Any, name: str, ndim: int) -> np.ndarray:
    """value as a finite float64 array of ndim dimensions, or DiagnosticsError naming `name`."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DiagnosticsError(f"reference {name} is not numeric or is ragged: {error}") from None
    if array.ndim != ndim:
        raise DiagnosticsError(f"reference {name} must have {ndim} dimension(s), got {array.ndim}")
    if not np.all(np.isfinite(array)):
        raise DiagnosticsError(f"reference {name} contains NaN or Inf")
    return array


def _check_geometry(dim: Any, centres: np.ndarray, weights: np.ndarray, std: float) -> None:
    """Raise DiagnosticsError unless dim, centres [K, dim], weights [K] and std agree."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise DiagnosticsError(f"reference dim must be a positive integer, got {dim!r}")
    if centres.shape[0] == 0 or centres.shape[1] != dim:
        raise DiagnosticsError(
            f"reference centres have shape {centres.shape}, need [K >= 1, {dim}]"
        )
    if weights.shape[0] != centres.shape[0]:
        raise DiagnosticsError(
            f"reference has {centres.shape[0]} centres but {weights.shape[0]} weights"
        )
    if np.any(weights < 0) or not weights.sum() > 0:
        raise DiagnosticsError("reference weights must be >= 0 with a positive sum")
    if not std > 0:
        raise DiagnosticsError(f"reference std must be > 0, got {std}")


def nearest_modes(
    samples: np.ndarray, centres: np.ndarray, block_size: int = DEFAULT_BLOCK_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest centre of each sample.

    samples: float [N, d]; centres: float [K, d]. Returns (index int64 [N] in 0..K-1,
    distance float64 [N], in sample units). Squared distances are |u|^2 - 2 u.v + |v|^2,
    clamped at 0, over blocks of block_size samples, so memory is O(N + K + block_size * K).
    The winner's distance is then recomputed directly as |u - v|, which avoids the
    cancellation of the expansion when |centre| >> std.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    samples = np.asarray(samples, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    index, _ = nearest_centres(samples, centres, block_size)
    offset = samples - centres[index]
    return index, np.sqrt(np.einsum("nd,nd->n", offset, offset))


def mode_metrics(
    samples: np.ndarray, mixture: GaussianMixture, block_size: int = DEFAULT_BLOCK_SIZE
) -> dict[str, Any]:
    """Mode coverage of a batch under the papers' protocol (see the module docstring).

    samples: finite float [N, d] with d == mixture.dim. Returns numpy values:
    "nearest" int64 [N], "distance" float64 [N], "high_quality" bool [N]
    (distance <= the radius: 3 std unless the reference sets another), "histogram" int64 [K]
    (high-quality samples per mode), "captured" bool [K] (histogram > 0),
    "high_quality_count" int, "covered" int.
    """
    nearest, distance = nearest_modes(samples, mixture.centres, block_size)
    high_quality = distance <= mixture.high_quality_radius
    histogram = np.bincount(nearest[high_quality], minlength=mixture.n_modes).astype(np.int64)
    captured = histogram > 0
    return {
        "nearest": nearest,
        "distance": distance,
        "high_quality": high_quality,
        "histogram": histogram,
        "captured": captured,
        "high_quality_count": int(high_quality.sum()),
        "covered": int(captured.sum()),
    }


def high_quality_probability(dim: int, stds: float = HIGH_QUALITY_STDS) -> float:
    """q = P(chi2_d <= stds^2): chance an exact draw of a mode lies within `stds` std of its
    own centre, d its noisy axes.

    |x - mu|^2 / std^2 ~ chi2 with d degrees of freedom, so q depends on d and the radius
    only (at 3 std: 0.9973 for d = 1, 0.9889 for d = 2).
    """
    return float(chi2_cdf(stds**2, dim))


def expected_coverage_ideal(mixture: GaussianMixture, n_samples: int) -> tuple[float, float]:
    """expected_coverage with s_k = w_k q, q = mixture.high_quality_probability() (below)."""
    return expected_coverage(mixture.weights * mixture.high_quality_probability(), n_samples)


def expected_coverage(success: np.ndarray, n_samples: int) -> tuple[float, float]:
    """(mean, std) of the number of modes an exact sampler captures with N draws.

    success: float [K], s_k, the chance that one draw is a high-quality hit on mode k (for a
    mixture, w_k q with q = high_quality_probability(d)); mode k is captured with
    p_k = 1 - (1 - s_k)^N, so
    mean = sum_k p_k. This assumes a draw within 3 std of its own centre has that centre as
    its nearest one (well-separated modes: true for ring8 and grid25). The std is exact for
    the multinomial, not the independence approximation sqrt(sum p_k (1 - p_k)), which
    overstates it (by 40% for 30 draws on grid25): with m_k = 1 - p_k,
    Var = sum_k m_k (1 - m_k) + sum_{j != k} [(1 - s_j - s_k)^N - m_j m_k].
    Modes with the same s_k are summed as one term times their count (uniform weights: one
    distinct value, so the sum over K^2 pairs is a handful of terms whatever K, where 10,000
    modes were 10^8 pairs); distinct values' pairs are summed in row blocks, so memory is
    O(distinct * block).
    """
    success = np.asarray(success, dtype=np.float64)
    if n_samples == 0:
        return 0.0, 0.0
    values, counts = np.unique(success, return_counts=True)
    counts = counts.astype(np.float64)
    with np.errstate(divide="ignore"):  # s_k = 1: log1p(-1) = -inf, the mode is never missed
        missed = np.exp(n_samples * np.log1p(-values))
    variance = float(np.sum(counts * missed * (1.0 - missed)))  # j == k
    rows_per_block = max(1, _PAIR_BLOCK_ELEMENTS // len(values))
    for start in range(0, len(values), rows_per_block):
        rows = np.arange(start, min(start + rows_per_block, len(values)))
        either = np.minimum(values[rows, None] + values[None, :], 1.0)
        with np.errstate(divide="ignore"):  # s_j + s_k = 1: one of the two is always hit
            both_missed = np.exp(n_samples * np.log1p(-either))
        pairs = counts[rows, None] * counts[None, :]
        pairs[np.arange(len(rows)), rows] -= counts[rows]  # a mode is not its own pair
        variance += float(np.sum(pairs * (both_missed - missed[rows, None] * missed[None, :])))
    return float(np.sum(counts * (1.0 - missed))), float(np.sqrt(max(variance, 0.0)))
