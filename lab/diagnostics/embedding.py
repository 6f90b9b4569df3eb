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
    return shape_layout(batch.shape)


def shape_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) of an image batch of `shape` [N, ...], as image_layout reads it."""
    shape = tuple(shape)
    if len(shape) == 3:
        return (1, *shape[1:])
    if len(shape) == 4 and shape[-1] <= 4 < shape[1]:
        return (shape[3], shape[1], shape[2])
    if len(shape) == 4:
        return shape[1:]
    raise DiagnosticsError(
        f"images must be [N, C, H, W], [N, H, W, C] or [N, H, W]; got shape {list(shape)}"
    )


def fits(shape: tuple[int, ...], sample_shape: tuple[int, ...]) -> bool:
    """Whether a batch of `shape` [N, ...] holds samples of sample_shape, (d,) for vectors or
    (C, H, W) for images, in a layout embed() and the classifier accept ([N] for d = 1;
    [N, C, H, W], [N, H, W, C] or [N, H, W] for C = 1)."""
    shape, sample_shape = tuple(shape), tuple(sample_shape)
    if len(sample_shape) == 1:
        return shape[1:] == sample_shape or (len(shape) == 1 and sample_shape == (1,))
    if len(shape) == 3:
        return (1, *shape[1:]) == sample_shape
    channels_last = (shape[-1], *shape[1:-1]) if len(shape) == 4 else None
    return len(shape) == 4 and sample_shape in (shape[1:], channels_last)


def describe_batch(shape: tuple[int, ...]) -> str:
    """What a batch of `shape` [N, ...] holds, in words: "vectors of 2 values", "28x28 images
    with 1 channel" (image_layout's reading of the layout)."""
    shape = tuple(shape)
    if len(shape) <= 2:
        return describe_samples(shape[1:] or (1,))
    if len(shape) <= 4:
        return describe_samples(shape_layout(shape))
    return f"arrays of shape {list(shape[1:])}"


def describe_samples(sample_shape: tuple[int, ...]) -> str:
    """Samples of sample_shape, (d,) or (C, H, W), in words: "8x8 images with 1 channel"."""
    if len(sample_shape) == 1:
        return f"vectors of {sample_shape[0]} value{'s' * (sample_shape[0] != 1)}"
    if len(sample_shape) == 3:
        channels, height, width = sample_shape
        return f"{height}x{width} images with {channels} channel{'s' * (channels != 1)}"
    return f"samples of shape {list(sample_shape)}"


def mismatch(shape: tuple[int, ...], sample_shape: tuple[int, ...], reference: str) -> str:
    """Why a batch of `shape` does not fit the reference: what was sent, what it takes."""
    return f"sent {describe_batch(shape)}; {reference} takes {describe_samples(sample_shape)}"


def to_channels_first(batch: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    """batch as [N, C, H, W] matching sample_shape (C, H, W), or DiagnosticsError."""
    if not fits(batch.shape, sample_shape):
        raise DiagnosticsError(mismatch(batch.shape, sample_shape, "the reference"))
    if batch.ndim == 3:
        batch = batch[:, None]
    if tuple(batch.shape[1:]) != tuple(sample_shape):
        batch = batch.transpose(0, 3, 1, 2)
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
