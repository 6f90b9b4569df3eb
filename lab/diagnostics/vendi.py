"""The Vendi score: the effective number of distinct samples (Friedman & Dieng 2023).

"The Vendi Score: A Diversity Evaluation Metric for Machine Learning", TMLR 2023, eq. 1:
VS = exp(-sum_i lambda_i ln lambda_i), lambda_i the eigenvalues of K / n, K the n x n
similarity matrix with k(x, x) = 1. It needs no reference: n identical samples score 1, n
mutually orthogonal ones score n. The kernel is the cosine similarity of the feature vectors
(the paper's choice for embeddings, `vendi.embedding_vendi_score`): K = X X^T with unit rows.
The nonzero eigenvalues of X X^T / n equal those of X^T X / n, so the smaller of the n x n
and d x d matrices is decomposed. At most max_samples rows are used (a seeded subsample
without replacement), which bounds the memory at max_samples^2 floats and the time at
O(n min(n, d)^2).
"""

import numpy as np

from .errors import DiagnosticsError

MAX_SAMPLES = 2000  # 2000^2 float64 = 32 MB


def vendi_score(samples: np.ndarray, max_samples: int = MAX_SAMPLES, seed: int = 0) -> float:
    """Vendi score of samples [n, d] (any int/float dtype) with the cosine kernel, in [1, n].

    Rows beyond max_samples are subsampled with np.random.default_rng(seed). All-zero rows
    have no direction, so no cosine similarity: DiagnosticsError.
    """
    points = np.asarray(samples, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise DiagnosticsError("Vendi score needs a non-empty [n, d] array")
    if points.shape[0] > max_samples:
        keep = np.random.default_rng(seed).choice(points.shape[0], max_samples, replace=False)
        points = points[np.sort(keep)]
    norms = np.linalg.norm(points, axis=1)
    if np.any(norms == 0):
        raise DiagnosticsError("Vendi score (cosine kernel) is undefined for all-zero rows")
    unit = points / norms[:, None]
    n = unit.shape[0]
    gram = unit.T @ unit if unit.shape[1] < n else unit @ unit.T
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)  # eq. 1, lambda of K / n
    positive = eigenvalues[eigenvalues > 0]
    positive = positive / positive.sum()  # trace(K / n) = 1 up to rounding
    return float(np.exp(-np.sum(positive * np.log(positive))))
