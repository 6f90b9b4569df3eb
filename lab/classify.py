"""Running a classifier reference (the digit classifier of `digits` and `stacked-digits`) over
a batch: each channel of each sample through the ONNX classifier. onnxruntime and numpy only,
so the trainer's evaluation and the service's routes count modes with the same code."""

import numpy as np
import onnxruntime as ort

from lab import runtime
from lab.diagnostics.classifier import softmax, split_channels

CLASSIFIER_BATCH = 4096  # classifier rows (single-channel images) per onnxruntime call


def classify(
    session: ort.InferenceSession, spec: dict, batch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C, classes] float64, embeddings [N, C * E] float32) of a batch of
    images [N, C, H, W] (or channels last) against the card's classifier `spec`."""
    images = split_channels(batch, spec)
    input_name = spec["input"]["name"]
    outputs = [
        runtime.run_batched(session, input_name, images, CLASSIFIER_BATCH, output)
        for output in ("logits", "embedding")
    ]
    channels = spec["channels"]
    logits, embeddings = (output.reshape(-1, channels, output.shape[-1]) for output in outputs)
    return softmax(logits.astype(np.float64)), embeddings.reshape(len(embeddings), -1)
