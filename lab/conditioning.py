"""Class-conditional models: which class each sample of a request is drawn for, and which of
the reference's modes each class holds (docs/conditional.md).

A conditional card (a gan's, so far) has a `conditional` object: `classes` K, `weights` (the
training data's class distribution, summing to 1) and the ONNX `input` that takes one int64
label per row. Its classes partition the reference's M modes in order: class k holds modes
k * M / K .. (k + 1) * M / K - 1 (class_modes). On the digits, class k is digit k; on the
stacked digits with K = 10, class k is the stacked digits whose first (red) digit is k, and
it holds 100 modes; with K = M each class is one mode.

A request's labels are one of:
- explicit: one label per sample (or one label for every sample);
- a class mix (K weights summing to 1), or none (the card's `weights`): sample i's class is a
  seeded categorical draw (lab.noise.categorical) from the i-th float64 uniform of the labels'
  own stream, label_generator(seed), so that the latents' stream (PCG64(seed)) is the same as
  an unconditional model's and the first m labels of n >= m samples are those of m samples.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from lab.noise import categorical

LABELS_STREAM = 1  # the spawn key of the labels' stream (label_generator)
LABEL_INPUT = {"name": "labels", "dtype": "int64", "shape": [-1]}  # what the trainer exports


def label_generator(seed: int) -> np.random.Generator:
    """The labels' PCG64 stream of `seed`: numpy's SeedSequence(seed) spawn child LABELS_STREAM,
    independent of the latents' PCG64(seed)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(LABELS_STREAM,))
    return np.random.Generator(np.random.PCG64(sequence))


def drawn_labels(mix: Sequence[float], n: int, seed: int) -> np.ndarray:
    """n labels int64 [n] drawn from the class mix by the labels' stream of `seed`."""
    return categorical(mix, label_generator(seed).random(n))


@dataclass(frozen=True)
class LabelChoice:
    """What a request asks of a conditional model's classes: `labels` (one label for every
    sample, or a tuple of one per sample), else `mix` (K weights), else the card's class
    weights (`mix` None too)."""

    labels: int | tuple[int, ...] | None = None
    mix: tuple[float, ...] | None = None

    def draw(self, weights: Sequence[float], n: int, seed: int) -> np.ndarray:
        """The labels int64 [n] of a request of (n, seed); `weights` is the card's class mix,
        used when the request sets neither labels nor a mix."""
        if isinstance(self.labels, int):
            return np.full(n, self.labels, np.int64)
        if self.labels is not None:
            return np.asarray(self.labels, dtype=np.int64)
        return drawn_labels(self.mix or weights, n, seed)

    def echo(self) -> dict:
        """What a response repeats of the choice, as the request sent it: `labels` (a label or
        a list) or `class_mix`, when set."""
        if self.labels is not None:
            labels = self.labels
            return {"labels": labels if isinstance(labels, int) else list(labels)}
        return {} if self.mix is None else {"class_mix": list(self.mix)}


DEFAULT_CHOICE = LabelChoice()


def check_labels(labels: np.ndarray, classes: int) -> None:
    """ValueError naming the first label outside 0..classes-1."""
    outside = np.flatnonzero((labels < 0) | (labels >= classes))
    if outside.size:
        first = int(outside[0])
        value = str(int(labels[first]))
        if len(value) > 24:  # a label of thousands of digits is named, not repeated
            value = f"{value[:12]}... ({len(value.lstrip('-'))} digits)"
        where = f"got {value}" if labels.size == 1 else f"label {first} is {value}"
        raise ValueError(
            f"labels must lie in 0..{classes - 1} (the model's {classes} classes); {where}"
        )


def class_modes(total: int, classes: int) -> list[range]:
    """The modes of each class: K ranges partitioning 0..total-1 in order. ValueError when the
    K classes do not split the total modes evenly."""
    if classes < 1 or total % classes:
        raise ValueError(f"{classes} classes do not split {total} modes evenly")
    size = total // classes
    return [range(k * size, (k + 1) * size) for k in range(classes)]


def class_weights(mode_weights: Sequence[float], classes: int) -> list[float]:
    """Each class's share of the reference's mode weights (its modes' sum)."""
    weights = np.asarray(mode_weights, dtype=np.float64)
    sums = [float(weights[list(modes)].sum()) for modes in class_modes(len(weights), classes)]
    return [value / sum(sums) for value in sums]


def conditional_input(card: dict) -> dict | None:
    """A card's label input spec {"name", "dtype": "int64", "shape": [-1]}, None when the
    model is not conditional."""
    conditional = card.get("conditional")
    return None if conditional is None else conditional["input"]


def request_labels(card: dict, choice: LabelChoice) -> Callable[[int, int], np.ndarray] | None:
    """(n, seed) -> the labels int64 [n] that `choice` gives a request of (n, seed) to a
    conditional card (choice.draw with the card's class weights); None for an unconditional
    card."""
    conditional = card.get("conditional")
    return None if conditional is None else partial(choice.draw, conditional["weights"])
