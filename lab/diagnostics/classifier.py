"""Modes counted by a classifier (the image benchmarks): digits (10 modes) and stacked digits
(1,000 modes, Stacked MNIST at 8x8; 10,000 for the four channels of stacked-digits4).

The reference card names a classifier model (kind classifier) whose input is images of C_in
channels in its `value_range`; a sample of `channels` groups of C_in channels is classified group
by group and the groups' classes make the mode id in base n_classes (stacked digits, C_in = 1:
100 * d_R + 10 * d_G + d_B; Metz et al. 2017, Srivastava et al. 2017). lab.classify runs the
classifier (onnxruntime); this module is the numpy around it: channels in, histogram out. The
`reference` dicts here are lab.cards.classifier_spec's: the reference with its classifier's
tensors and confidence rule.

A sample is **high quality** when the classifier is confident: the product over channel groups
of the top class probability is at least the classifier card's confidence threshold
(`confidence.threshold`: CONFIDENCE_THRESHOLD for the bundled digit classifier, 0.999 for the
MNIST one; the classifier-confidence version of "within 3 std of a centre"). The ideal sampler
of the report's `expected_covered_ideal` is then assumed to be classified confidently and
correctly (q = 1; 98% of real 8x8 digits are, 91% of real MNIST digits at 0.999).
"""

from typing import Any

import numpy as np

from .embedding import to_channels_first
from .errors import DiagnosticsError

# A confident call: 98.2% of the real 8x8 digits pass it with the bundled classifier, and no
# misclassified real digit does (at 0.9 one does: it would fake a covered mode). A classifier
# card sets its own (`confidence.threshold`; mnist-classifier: 0.999, docs/diagnostics.md).
CONFIDENCE_THRESHOLD = 0.99


def classifier_sample_shape(reference: dict[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) of the samples a classifier reference takes: `channels` groups of the
    classifier's C_in channels, at its height and width."""
    _, channels_in, height, width = reference["input"]["shape"]
    return (reference["channels"] * channels_in, height, width)


def confidence_threshold(reference: dict[str, Any]) -> float:
    """The classifier's confidence rule (its card's `confidence`), CONFIDENCE_THRESHOLD when
    the spec names none."""
    return float(reference.get("confidence", {}).get("threshold", CONFIDENCE_THRESHOLD))


def split_channels(batch: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """The classifier's input for a batch [N, G * C_in, H, W] (or [N, H, W, C], [N, H, W]) of
    G = `channels` groups: float32 [N * G, C_in, H, W], sample-major (sample i's groups are rows
    i*G .. i*G + G - 1)."""
    _, channels_in, height, width = reference["input"]["shape"]
    shape = classifier_sample_shape(reference)
    images = to_channels_first(np.asarray(batch, dtype=np.float64), shape)
    if images.shape[0] == 0:
        raise DiagnosticsError("no samples: the batch has 0 images")
    pixels = images.reshape(images.shape[0], -1)
    bad = np.flatnonzero(~np.all(np.abs(pixels) <= np.finfo(np.float32).max, axis=1))
    if bad.size:  # the classifier runs in float32: beyond its range a value is inf
        raise DiagnosticsError(
            f"{bad.size} of {images.shape[0]} images contain NaN or Inf, or values beyond "
            f"float32 (first: {int(bad[0])})"
        )
    return images.reshape(-1, channels_in, height, width).astype(np.float32)


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
