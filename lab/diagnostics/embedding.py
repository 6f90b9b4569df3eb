"""Feature embeddings: how a batch becomes the vectors the k-NN metrics compare.

- "raw": vectors [N, d] are their own features.
- "pixels": images become their flattened pixels in C, H, W order, values as given. This is
  the documented fixed pixel-space embedding, used where no classifier embedding exists:
  reference and batch must then share a value scale (PNG uploads are 8-bit / 255, in [0, 1]).

Images may arrive as [N, C, H, W], [N, H, W, C] (channels last, C in 1..4) or [N, H, W]
(one channel); `sample_shape` (C, H, W) decides the layout.
"""

import numpy as np

from .errors import DiagnosticsError

EMBEDDINGS = ("raw", "pixels")


def image_layout(batch: np.ndarray) -> tuple[int, ...]:
    """(C, H, W) of an image batch, taking a small last axis as channels-last."""
    if batch.ndim == 3:
        return (1, *batch.shape[1:])
    if batch.ndim == 4 and batch.shape[-1] <= 4 < batch.shape[1]:
        return (batch.shape[3], batch.shape[1], batch.shape[2])
    if batch.ndim == 4:
        return tuple(batch.shape[1:])
    raise DiagnosticsError(
        f"images must be [N, C, H, W], [N, H, W, C] or [N, H, W]; got shape {list(batch.shape)}"
    )


def to_channels_first(batch: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    """batch as [N, C, H, W] matching sample_shape (C, H, W), or DiagnosticsError."""
    if batch.ndim == 3:
        batch = batch[:, None]
    if tuple(batch.shape[1:]) != tuple(sample_shape) and batch.ndim == 4:
        batch = batch.transpose(0, 3, 1, 2)
    if tuple(batch.shape[1:]) != tuple(sample_shape):
        raise DiagnosticsError(
            f"images of shape {list(batch.shape[1:])} do not fit the "
            f"reference's (C, H, W) = {list(sample_shape)}"
        )
    return batch


def embed(batch: np.ndarray, embedding: str, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Features float64 [N, D] of a batch [N, ...] under `embedding` (see the module doc)."""
    batch = np.asarray(batch, dtype=np.float64)
    if embedding == "raw":
        if batch.ndim != 2 or batch.shape[1:] != tuple(sample_shape):
            raise DiagnosticsError(
                f"samples must be [N, {sample_shape[0]}] vectors; got shape {list(batch.shape)}"
            )
        return batch
    if embedding == "pixels":
        images = to_channels_first(batch, sample_shape)
        return images.reshape(images.shape[0], -1)
    raise DiagnosticsError(f"unknown embedding {embedding!r} (known: {', '.join(EMBEDDINGS)})")
