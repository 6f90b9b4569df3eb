"""Running a classifier or embedding model (kinds classifier and embedding) over a batch: each
channel group of each sample through the ONNX classifier, or each image through the embedding.
onnxruntime and numpy only, so the trainer's evaluation and the service's routes count modes and
embed samples with the same code."""

import numpy as np
import onnxruntime as ort

from lab import runtime
from lab.diagnostics.classifier import softmax, split_channels

CLASSIFIER_BATCH = 4096  # classifier rows (single-channel images) per onnxruntime call


def classify(
    session: ort.InferenceSession, spec: dict, batch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, G, classes] float64, features [N, G * E] float32) of a batch of images
    [N, G * C_in, H, W] (or channels last) against a classifier reference's spec
    (lab.cards.classifier_spec; G = its `channels`): softmax of the scores when they are logits,
    and the embedding output as features, or the probabilities when the classifier has none."""
    images = split_channels(batch, spec)
    input_name, groups = spec["input"]["name"], spec["channels"]
    scores = runtime.run_batched(
        session, input_name, images, CLASSIFIER_BATCH, spec["output"]["name"]
    ).astype(np.float64)
    probabilities = softmax(scores) if spec["output"].get("scores") == "logits" else scores
    probabilities = probabilities.reshape(-1, groups, probabilities.shape[-1])
    embedding = spec.get("embedding_output")
    if embedding is None:
        features = probabilities.astype(np.float32)
    else:
        features = runtime.run_batched(
            session, input_name, images, CLASSIFIER_BATCH, embedding["name"]
        )
    return probabilities, features.reshape(len(probabilities), -1)


def embed_images(session: ort.InferenceSession, card: dict, batch: np.ndarray) -> np.ndarray:
    """Features float64 [N, D] of images [N, C_in, H, W] (or channels last) by an embedding
    model (its card: `input`, `output`); DiagnosticsError when the batch does not fit."""
    images = split_channels(batch, {"channels": 1, "input": card["input"]})
    features = runtime.run_batched(
        session, card["input"]["name"], images, CLASSIFIER_BATCH, card["output"]["name"]
    )
    return features.astype(np.float64)
