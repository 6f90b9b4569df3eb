"""Modes counted by a classifier (the image benchmarks): digits (10 modes) and stacked digits
(1,000 modes, Stacked MNIST at 8x8).

The reference card names an ONNX classifier whose input is one-channel images in the card's
`value_range`; a sample of C channels is classified channel by channel and the C digits make
the mode id in base 10 (stacked digits: 100 * d_R + 10 * d_G + d_B; Metz et al. 2017,
Srivastava et al. 2017). The service runs the classifier (onnxruntime); this module is the
numpy around it: channels in, histogram out.

A sample is **high quality** when the classifier is confident: the product over channels of
the top class probability is at least the card's `confidence_threshold`, CONFIDENCE_THRESHOLD
when the card has none (the classifier-confidence version of "within 3 std of a centre").
The ideal sampler of the report's `expected_covered_ideal` is then assumed to be classified
confidently and correctly (q = 1; 98% of real 8x8 digits are, 91% of real MNIST digits at
0.999).
"""

from typing import Any

import numpy as np

from .embedding import to_channels_first
from .errors import DiagnosticsError

# A confident call: 98.2% of the real 8x8 digits pass it with the bundled classifier, and no
# misclassified real digit does (at 0.9 one does: it would fake a covered mode). A card may set
# its own (`confidence_threshold`; mnist: 0.999, docs/diagnostics.md).
CONFIDENCE_THRESHOLD = 0.99


def confidence_threshold(reference: dict[str, Any]) -> float:
    """The reference's confidence threshold: its card's `confidence_threshold`, else
    CONFIDENCE_THRESHOLD."""
    return float(reference.get("confidence_threshold", CONFIDENCE_THRESHOLD))


def split_channels(batch: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """The classifier's input for a batch [N, C, H, W] (or [N, H, W, C], [N, H, W]):
    float32 [N * C, 1, H, W], sample-major (sample i's channels are rows i*C .. i*C + C - 1).
    """
    channels = reference["channels"]
    height, width = reference["input"]["shape"][2:]
    images = to_channels_first(np.asarray(batch, dtype=np.float64), (channels, height, width))
    if images.shape[0] == 0:
        raise DiagnosticsError("no samples: the batch has 0 images")
    pixels = images.reshape(images.shape[0], -1)
    bad = np.flatnonzero(~np.all(np.abs(pixels) <= np.finfo(np.float32).max, axis=1))
    if bad.size:  # the classifier runs in float32: beyond its range a value is inf
        raise DiagnosticsError(
            f"{bad.size} of {images.shape[0]} images contain NaN or Inf, or values beyond "
            f"float32 (first: {int(bad[0])})"
        )
    return images.reshape(-1, 1, height, width).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits [..., classes], computed stably."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def classified_modes(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mode id int64 [N], confidence float [N]) of probabilities [N, C, classes]: the
    channels' argmax digits in base `classes` (R most significant) and the product over
    channels of the top probability."""
    digits = probabilities.argmax(axis=-1)  # [N, C]
    place = probabilities.shape[-1] ** np.arange(digits.shape[1] - 1, -1, -1)
    return digits @ place, probabilities.max(axis=-1).prod(axis=-1)


def classified_histogram(probabilities: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """High-quality samples per mode, int64 [n_modes], from probabilities [N, C, classes]."""
    modes, confidence = classified_modes(probabilities)
    confident = confidence >= confidence_threshold(reference)
    return np.bincount(modes[confident], minlength=reference["n_modes"]).astype(np.int64)


def argmax_histogram(probabilities: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """Every sample per mode, confident or not, int64 [n_modes]: the Stacked-MNIST papers'
    count (Metz et al. 2017, Srivastava et al. 2017, Lin et al. 2018 label each channel of
    every sample with a pretrained classifier's argmax, without a confidence filter)."""
    modes, _ = classified_modes(probabilities)
    return np.bincount(modes, minlength=reference["n_modes"]).astype(np.int64)
