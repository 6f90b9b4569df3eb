"""What every exporter shares: torch -> ONNX, one version folder of the model repository, and
the export skeleton (export_model) around a family's own pieces.

A model lives in models/<name>/: <version>/model.onnx (plus any graphs derived from it) and
card.json, valid against lab/schemas/card.schema.json, listing every version.
"""

import contextlib
import datetime
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from lab.cards import check_name, next_version, read_card, sha256, write_card

OPSET = 18
MAX_IR_VERSION = 10  # onnxruntime 1.31 loads IR <= 13; onnx 1.23 writes 14 unless told
PARITY_TOLERANCE = 1e-4  # max |torch - onnxruntime| allowed at export
PARITY_INPUTS = 4096
PARITY_SEED = 1
EXPORT_BATCH = 8  # >= 2, so torch.export keeps the batch axis symbolic


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known third-party chatter (not our warnings)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings():
            # torch.export's pytree still calls a deprecated LeafSpec check (torch 2.13).
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            # Inputs sharing the batch axis (x and sigma of a denoiser) share its one name.
            warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used.*")
            yield
    finally:
        registration.setLevel(level)


def module_to_onnx(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    input_name: str | list[str],
    output_names: list[str],
) -> onnx.ModelProto:
    """module(*example) -> ONNX (opset 18, IR <= 10) with a dynamic batch axis, checked.

    example: one tensor (named input_name) or a tuple of tensors (named by the list
    input_name) sharing a batch of at least 2 (EXPORT_BATCH), so torch.export keeps the batch
    axis symbolic; every input's first axis is that same batch.
    """
    examples = example if isinstance(example, tuple) else (example,)
    input_names = input_name if isinstance(input_name, list) else [input_name]
    batch = torch.export.Dim("batch")
    with quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            examples,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=tuple({0: batch} for _ in examples),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            report=False,
        )
    model = program.model_proto
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def utc_now() -> str:
    """ISO 8601 UTC time, seconds precision."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def save_version(
    model: onnx.ModelProto,
    version_dir: Path,
    version: int,
    parity_of: Callable[[Path], dict[str, Any]],
) -> dict[str, Any]:
    """Save model as version_dir/model.onnx, measure parity_of(its path) (which raises above
    tolerance), and return the card's `versions` entry; nothing is left behind on failure."""
    version_dir.mkdir(parents=True)
    path = version_dir / "model.onnx"
    try:
        onnx.save_model(model, path)
        parity = parity_of(path)
    except BaseException:
        shutil.rmtree(version_dir)
        raise
    return {
        "version": version,
        "file": f"{version}/model.onnx",
        "sha256": sha256(path),
        "opset": OPSET,
        "ir_version": int(model.ir_version),
        "parity": parity,
    }


def export_model(
    models_dir: Path,
    name: str,
    kind: str,
    version: int | None,
    write_version: Callable[[Path, int], dict[str, Any]],
    make_card: Callable[[Path, dict[str, Any], list[dict[str, Any]]], dict[str, Any]],
) -> Path:
    """Add one version of a `kind` model to models_dir/<name>; the card's path.

    write_version(version_dir, version) exports, saves and parity-checks the model, returning
    the card's `versions` entry (save_version); make_card(model_dir, entry, versions) returns
    the card, after writing whatever it derives into the version folder (graphs, diagnostics).
    version defaults to the previous largest + 1; older versions stay listed in the card.
    ValueError for bad requests (invalid name, existing version, a card of another kind);
    whatever fails removes the new version folder, and the card is written last.
    """
    check_name(name)
    model_dir = Path(models_dir) / name
    previous = read_card(model_dir)
    if previous is not None and previous.get("kind") != kind:
        raise ValueError(f"{model_dir} holds a {previous.get('kind')!r} card, not a {kind} model")
    version = next_version(model_dir, previous) if version is None else version
    version_dir = model_dir / str(version)
    if version_dir.exists():
        raise ValueError(f"{version_dir} already exists; choose another version")
    entry = write_version(version_dir, version)
    older = [v for v in (previous or {}).get("versions", []) if v["version"] != version]
    versions = sorted(older + [entry], key=lambda v: v["version"])
    try:
        return write_card(model_dir, make_card(model_dir, entry, versions))
    except BaseException:  # an invalid card too: the version folder goes with it
        shutil.rmtree(version_dir)
        raise
