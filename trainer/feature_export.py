"""A user's own torch classifier or embedding network -> a `classifier` or `embedding` model of
the repository (`python -m trainer export-classifier` / `export-embedding`).

The network is the user's class (`package.module:ClassName`, imported here, trainer side only),
built with their constructor arguments and loaded with their state_dict
(torch.load(weights_only=True): tensors only, never pickled code). Its forward takes images
[batch, C, H, W] float32 in the declared value range and returns one tensor or a tuple: a
classifier's class scores [batch, n_classes] (logits or probabilities) first, then optionally
an embedding [batch, E]; an embedding network's features [batch, D] first. The ONNX file keeps
the outputs the card names; torch-vs-onnxruntime parity is measured on random inputs drawn
uniformly in the value range, and a version above tolerance is refused (nothing written).
"""

import importlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from torch import Tensor, nn

from lab.cards import read_card
from lab.diagnostics.classifier import CONFIDENCE_THRESHOLD
from trainer.classifier_references import classifier_model_card
from trainer.onnx_export import (
    EXPORT_BATCH,
    PARITY_SEED,
    PARITY_TOLERANCE,
    export_model,
    module_to_onnx,
    save_version,
    utc_now,
)

INPUT_NAME = "images"
PARITY_INPUTS = 512  # random images per parity check: enough to reach every branch of a net
TENSOR_KEYS = ("input", "value_range", "output", "embedding_output", "n_classes", "feature_dim")


@dataclass(frozen=True)
class FeatureExport:
    """What export-classifier and export-embedding take (the CLI's flags, one to one).

    module: "package.module:ClassName"; init_args: its constructor's keyword arguments;
    state_dict: a file torch.save wrote from model.state_dict(); input_shape: (C, H, W);
    value_range: (low, high) of the input values; n_classes: classifiers only (None for an
    embedding); scores: "logits" (softmax applied by the service) or "probabilities";
    output: the name of the first output (scores, or an embedding's features);
    embedding_output: a classifier's second output, when it returns one.
    """

    module: str
    state_dict: Path
    input_shape: tuple[int, int, int]
    value_range: tuple[float, float]
    name: str
    models_dir: Path = Path("models")
    init_args: dict[str, Any] = field(default_factory=dict)
    n_classes: int | None = None
    scores: str = "logits"
    output: str | None = None
    embedding_output: str | None = None
    threshold: float = CONFIDENCE_THRESHOLD
    version: int | None = None
    parity_tolerance: float = PARITY_TOLERANCE

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input shape must be C,H,W of positive sizes, got {self.input_shape}")
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"value range must be LOW,HIGH with LOW < HIGH, got {low},{high}")
        if self.n_classes is not None and self.n_classes < 2:
            raise ValueError(f"classes must be >= 2, got {self.n_classes}")
        if self.scores not in ("logits", "probabilities"):
            raise ValueError(f"scores must be logits or probabilities, got {self.scores!r}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.embedding_output is not None and self.n_classes is None:
            raise ValueError("--embedding-output is for classifiers")
        if self.embedding_output is not None and self.embedding_output == self.output_name:
            raise ValueError("the embedding output needs a name of its own")

    @property
    def kind(self) -> str:
        return "embedding" if self.n_classes is None else "classifier"

    @property
    def output_name(self) -> str:
        default = self.scores if self.kind == "classifier" else "features"
        return self.output or default

    @property
    def output_names(self) -> list[str]:
        return [self.output_name] + ([self.embedding_output] if self.embedding_output else [])


def load_module(module: str, init_args: dict[str, Any], state_dict: Path) -> nn.Module:
    """The user's network `package.module:ClassName`(**init_args) with the weights of
    `state_dict`, in eval mode; ValueError saying what is wrong."""
    module_name, _, class_name = module.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"--module must be package.module:ClassName, got {module!r}")
    try:
        network_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {module!r}: {error}") from None
    try:
        network = network_class(**init_args)
    except TypeError as error:
        raise ValueError(f"{class_name}(**{json.dumps(init_args)}) failed: {error}") from None
    if not isinstance(network, nn.Module):
        raise ValueError(f"{module} is not a torch.nn.Module")
    try:
        weights = torch.load(state_dict, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no state_dict file {state_dict}") from None
    except Exception as error:  # unpickling refused (weights_only) or not a torch file
        raise ValueError(f"{state_dict} is not a state_dict of tensors: {error}") from None
    if not isinstance(weights, dict):
        raise ValueError(f"{state_dict} holds a {type(weights).__name__}, not a state_dict")
    try:
        network.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"{state_dict} does not fit {class_name}: {error}") from None
    return network.eval()


class SelectedOutputs(nn.Module):
    """The network with its first `count` outputs (a tuple when count > 1): what is exported."""

    def __init__(self, network: nn.Module, count: int) -> None:
        super().__init__()
        self.network = network
        self.count = count

    def forward(self, images: Tensor) -> Tensor | tuple[Tensor, ...]:
        outputs = self.network(images)
        outputs = tuple(outputs) if isinstance(outputs, tuple | list) else (outputs,)
        return outputs[0] if self.count == 1 else outputs[: self.count]


def random_inputs(request: FeatureExport, n: int, seed: int) -> Tensor:
    """n images [n, C, H, W] float32 drawn uniformly in the value range."""
    low, high = request.value_range
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, *request.input_shape, generator=generator)


def output_widths(network: nn.Module, request: FeatureExport) -> list[int]:
    """The width of each named output on an example batch; ValueError when the network does
    not take the declared input or returns outputs of the wrong number or shape."""
    images = random_inputs(request, EXPORT_BATCH, PARITY_SEED)
    try:
        with torch.no_grad():
            outputs = network(images)
    except Exception as error:  # the user's forward: any exception type
        shape = [EXPORT_BATCH, *request.input_shape]
        raise ValueError(f"the network fails on images of shape {shape}: {error}") from None
    outputs = outputs if isinstance(outputs, tuple | list) else (outputs,)
    names = request.output_names
    if len(outputs) < len(names) or not all(isinstance(o, Tensor) for o in outputs):
        raise ValueError(f"the network returns {len(outputs)} tensor(s); the card names {names}")
    for name, output in zip(names, outputs, strict=False):
        if output.ndim != 2 or output.shape[0] != EXPORT_BATCH:
            raise ValueError(f"output {name!r} has shape {list(output.shape)}, not [batch, width]")
    widths = [int(output.shape[1]) for output in outputs[: len(names)]]
    if request.n_classes is not None and widths[0] != request.n_classes:
        raise ValueError(f"output {names[0]!r} has {widths[0]} classes, not {request.n_classes}")
    return widths


def measure_parity(network: nn.Module, request: FeatureExport, path: Path) -> dict[str, Any]:
    """torch vs onnxruntime (CPU) on PARITY_INPUTS random images, every output; ValueError
    above the tolerance (the version is then not written)."""
    images = random_inputs(request, PARITY_INPUTS, PARITY_SEED + 1)
    with torch.no_grad():
        expected = network(images)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(request.output_names, {INPUT_NAME: images.numpy()})
    errors = [
        np.abs(e.numpy().astype(np.float64) - a.astype(np.float64))
        for e, a in zip(expected, actual, strict=True)
    ]
    parity = {"max_abs_error": float(max(error.max() for error in errors)), "n_inputs": len(images)}
    if not parity["max_abs_error"] <= request.parity_tolerance:  # also catches NaN
        raise ValueError(
            f"ONNX parity failed: max |torch - onnxruntime| = {parity['max_abs_error']:.3g} "
            f"over {len(images)} random inputs, above the tolerance {request.parity_tolerance:g} "
            "(nothing written); a network that is random in eval mode cannot be exported"
        )
    return parity


def card_tensors(request: FeatureExport, widths: list[int]) -> dict[str, Any]:
    """The card's input, value_range, output (+ embedding_output, n_classes or feature_dim)."""

    def tensor(name: str, shape: list[int]) -> dict[str, Any]:
        return {"name": name, "dtype": "float32", "shape": shape}

    tensors = {
        "input": tensor(INPUT_NAME, [-1, *request.input_shape]),
        "value_range": [float(bound) for bound in request.value_range],
        "output": tensor(request.output_name, [-1, widths[0]]),
    }
    if request.kind == "embedding":
        return tensors | {"feature_dim": widths[0]}
    tensors["output"]["scores"] = request.scores
    if request.embedding_output:
        tensors["embedding_output"] = tensor(request.embedding_output, [-1, widths[1]])
    return tensors | {"n_classes": request.n_classes}


def model_card(request: FeatureExport, tensors: dict, versions: list[dict]) -> dict[str, Any]:
    """The classifier or embedding card listing `versions`."""
    architecture = {"module": request.module, "init_args": request.init_args}
    description = (
        f"{request.module} exported as a {request.kind} model "
        f"(images {list(request.input_shape)} in {list(request.value_range)})"
    )
    extra = {"architecture": architecture}
    if request.kind == "classifier":
        card = classifier_model_card(request.name, description, tensors, versions, extra)
        card["confidence"]["threshold"] = request.threshold
        return card
    head = {"schema_version": 1, "name": request.name, "kind": "embedding"}
    return (
        head
        | {"description": description, "created": utc_now(), **tensors, **extra}
        | {"versions": versions}
    )


def check_same_tensors(request: FeatureExport, tensors: dict[str, Any]) -> None:
    """ValueError when a card of that name exists with other tensors: its older versions would
    no longer match it."""
    previous = read_card(Path(request.models_dir) / request.name)
    if previous is None or previous.get("kind") != request.kind:
        return  # none, or of another kind: export_model refuses the latter
    before = {key: previous.get(key) for key in TENSOR_KEYS}
    after = {key: tensors.get(key) for key in TENSOR_KEYS}
    if before != after:
        raise ValueError(
            f"{request.name!r} exists with other tensors ({before}); a new version must keep "
            "them: export under another --name"
        )


def export_feature_model(request: FeatureExport) -> Path:
    """Export the user's network as the next version (or request.version) of
    models_dir/<name>, a classifier or embedding card; the card's path. ValueError for a bad
    request or a failing parity (nothing written)."""
    network = load_module(request.module, request.init_args, request.state_dict)
    widths = output_widths(network, request)
    tensors = card_tensors(request, widths)
    check_same_tensors(request, tensors)
    selected = SelectedOutputs(network, len(request.output_names)).eval()
    example = random_inputs(request, EXPORT_BATCH, PARITY_SEED)
    proto = module_to_onnx(selected, example, INPUT_NAME, request.output_names)
    parity_of: Callable[[Path], dict] = partial(measure_parity, selected, request)

    def write_version(version_dir: Path, version: int) -> dict[str, Any]:
        return save_version(proto, version_dir, version, parity_of)

    def make_card(_: Path, entry: dict, versions: list[dict]) -> dict[str, Any]:
        return model_card(request, tensors, versions)

    model_dir = Path(request.models_dir) / request.name
    existed = model_dir.exists()
    try:
        return export_model(
            request.models_dir,
            request.name,
            request.kind,
            request.version,
            write_version,
            make_card,
        )
    except BaseException:  # a first version that failed leaves no empty model folder behind
        if not existed:
            shutil.rmtree(model_dir, ignore_errors=True)
        raise
