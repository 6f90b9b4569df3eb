"""Import a generator this project did not train: an ONNX file z [batch, d] -> samples becomes
models/<name>/<version>/model.onnx with a `gan` card that declares its latent distribution,
output shape and value range (`imported`: true, no training config), and the card's
diagnostics measured as for a bundled model (trainer.diagnose.gan_diagnostics).

The file is copied unchanged, except that weights in an external data file (torch.onnx.export
writes `<file>.data` beside it) are stored inside model.onnx, so the version is one file with
one sha256. Everything is checked on that copy before the card exists: it loads in onnxruntime
(its IR version at most RUNTIME_MAX_IR_VERSION: a newer file is refused, not down-converted,
since lowering the number is only safe when the graph uses nothing newer, which we cannot check
in general); it has one float32 input [batch, d] and one float32 output, both batch axes
dynamic; it runs on CHECK_ROWS of the declared latents giving [rows, *output shape]; and on
the diagnostics' latents its values are finite and within the declared range (RANGE_TOLERANCE).
The folder is built in a staging dot-folder of the repository (which the service skips) and
renamed into place, so a failure leaves nothing half-written.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.external_data_helper import uses_external_data

from lab import runtime
from lab.cards import (
    check_name,
    check_signature,
    classifier_spec,
    next_version,
    read_card,
    sha256,
    write_card,
)
from lab.sampling import DEFAULT_MAX_BATCH, generator_drawer
from trainer.diagnose import GAN_SEED, gan_diagnostics, sample_count
from trainer.onnx_export import utc_now

RUNTIME_MAX_IR_VERSION = 13  # the newest ONNX IR version onnxruntime 1.31 loads
CHECK_ROWS = (2, 3)  # two batch sizes: a fixed batch axis fails one of them
RANGE_TOLERANCE = 0.01  # outputs may overshoot the declared range by this fraction of its span
FLOAT = "tensor(float)"


@dataclass(frozen=True)
class Declared:
    """What the importer declares about a generator (the card's contract).

    latent: {"distribution": "normal" | "uniform", "dim": d, "low"/"high" when uniform}.
    output_shape: one sample's shape, e.g. (2,) or (3, 8, 8).
    value_range: (low, high) of the outputs (images), None when unbounded (points).
    reference: the reference card in the repository that diagnostics compare against.
    """

    name: str
    latent: dict
    output_shape: tuple[int, ...]
    value_range: tuple[float, float] | None
    reference: str
    description: str | None = None


def import_generator(source: Path, declared: Declared, models_dir: Path) -> Path:
    """Check `source` against `declared` (staged_card), then add it as the next version of
    models_dir/<name> with its card and diagnostics, atomically; the card's path. ValueError,
    with nothing written, for a file that does not match its declaration."""
    models_dir, model_dir = Path(models_dir), Path(models_dir) / declared.name
    check_name(declared.name)
    if not models_dir.is_dir():
        raise ValueError(f"no model repository {models_dir}: --models-dir names a folder")
    staging = Path(tempfile.mkdtemp(prefix=f".{declared.name}.import-", dir=models_dir))
    try:
        card = staged_card(Path(source), declared, models_dir, staging)
        previous = previous_card(model_dir, card)
        card["versions"] = [*(previous or {}).get("versions", []), *card["versions"]]
        target = staging / card["versions"][-1]["file"]
        card["diagnostics"] = gan_diagnostics(target, card, models_dir)
        write_card(staging, card)
        install(staging, model_dir, card["versions"][-1]["version"], previous is None)
        return model_dir / "card.json"
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_generator(source: Path, declared: Declared, models_dir: Path) -> dict:
    """The card import_generator would write, without its diagnostics and older versions,
    after the same checks on a copy in a temporary folder; nothing is written to models_dir."""
    check_name(declared.name)
    with tempfile.TemporaryDirectory() as staging:
        return staged_card(Path(source), declared, Path(models_dir), Path(staging))


def staged_card(source: Path, declared: Declared, models_dir: Path, staging: Path) -> dict:
    """Copy `source` to staging/<next version>/model.onnx (stored_copy), check the copy
    (module docstring) and return the card, its `versions` the new version alone, without
    diagnostics; ValueError naming the first failed check."""
    reference = reference_card(models_dir, declared.reference)
    check_output_against_reference(declared, reference, models_dir)
    model_dir = models_dir / declared.name
    version = next_version(model_dir, read_card(model_dir) if model_dir.is_dir() else None)
    target = staging / str(version) / "model.onnx"
    model = stored_copy(source, target)
    session = open_session(target, source.name)
    card = declared_card(declared, reference["dataset"], session)
    try:
        check_signature(session, card)
    except ValueError as error:
        raise ValueError(f"{source.name} does not match --latent/--output-shape: {error}") from None
    check_runs(session, card, declared.output_shape)
    measured = measure_range(session, card, declared.value_range)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ValueError(f"{source.name} imports no default-domain (ai.onnx) opset")
    entry = {"version": version, "file": f"{version}/model.onnx", "sha256": sha256(target)}
    entry |= {"opset": int(opset), "ir_version": int(model.ir_version)}
    card["versions"] = [{**entry, "source": {"file": source.name, **measured}}]
    return card


def reference_card(models_dir: Path, name: str) -> dict:
    """The `reference` card models_dir/<name>; ValueError listing the references there."""
    card = read_card(models_dir / name) if name and (models_dir / name).is_dir() else None
    if card is None or card.get("kind") != "reference":
        known = sorted(
            folder.name
            for folder in models_dir.glob("*")
            if (read_card(folder) or {}).get("kind") == "reference"
        )
        raise ValueError(
            f"unknown reference {name!r}: {models_dir} has no reference card of that name; "
            f"choose from {', '.join(known) or 'none'}"
        )
    return card


def check_output_against_reference(declared: Declared, reference: dict, models_dir: Path) -> None:
    """ValueError unless the declared sample shape (and, for a classifier, value range) is what
    the reference judges: a mixture's points [dim]; a classifier's images [channels, H, W] in
    its value_range (from the classifier model the reference names, in models_dir)."""
    spec = reference["reference"]
    if spec["type"] == "classifier":
        classifier = read_card(models_dir / spec["classifier"])
        if classifier is None:
            raise ValueError(
                f"reference {reference['name']} names classifier {spec['classifier']!r}, "
                f"which {models_dir} does not hold"
            )
        spec = classifier_spec(spec, classifier)
    if spec["type"] == "gaussian_mixture":
        expected = (spec["dim"],)
    else:
        expected = (spec["channels"], *spec["input"]["shape"][2:])
        if declared.value_range is None or list(declared.value_range) != spec["value_range"]:
            raise ValueError(
                f"reference {reference['name']} classifies images in {spec['value_range']}; "
                f"declare --value-range={','.join(str(v) for v in spec['value_range'])} "
                "(rescale the generator's output to it), not "
                f"{None if declared.value_range is None else list(declared.value_range)}"
            )
    if tuple(declared.output_shape) != expected:
        raise ValueError(
            f"reference {reference['name']} judges samples of shape {list(expected)}; the "
            f"declared output shape is {list(declared.output_shape)}"
        )


def stored_copy(source: Path, target: Path) -> onnx.ModelProto:
    """Copy the ONNX file `source` to `target` (its external data, if any, stored inside);
    the model. ValueError when it is no ONNX file, its external data are missing, or its IR
    version is newer than RUNTIME_MAX_IR_VERSION."""
    if not source.is_file():
        raise ValueError(f"no such file: {source}")
    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends
        raise ValueError(f"{source.name} is not an ONNX model: {error}") from None
    if model.ir_version < 3 or not model.graph.node:
        raise ValueError(f"{source.name} is not an ONNX model (no IR version or no graph nodes)")
    if model.ir_version > RUNTIME_MAX_IR_VERSION:
        raise ValueError(
            f"{source.name} has ONNX IR version {model.ir_version}; this onnxruntime loads at "
            f"most {RUNTIME_MAX_IR_VERSION}. Save it with an older IR version (when its graph "
            "uses nothing newer: model.ir_version = 10; onnx.save(model, path), as "
            "trainer/onnx_export.py does for this project's models)"
        )
    target.parent.mkdir(parents=True)
    if not any(uses_external_data(t) for t in model.graph.initializer):
        shutil.copyfile(source, target)  # the bytes unchanged: the same sha256
        return model
    try:
        onnx.load_external_data_for_model(model, str(source.parent))
    except OSError as error:
        raise ValueError(f"{source.name}: its external data cannot be read: {error}") from None
    onnx.save_model(model, target)
    return model


def open_session(path: Path, shown: str) -> object:
    """An onnxruntime CPU session on `path`; ValueError naming `shown` with onnxruntime's
    reason."""
    try:
        return runtime.create_session(path, "cpu")
    except Exception as error:  # onnxruntime raises its own types for broken graphs
        raise ValueError(f"onnxruntime cannot load {shown}: {error}") from None


def declared_card(declared: Declared, dataset: str, session: object) -> dict[str, Any]:
    """The gan card of the declaration, its tensors named after the session's one float input
    [batch, d] and one float output; ValueError when the file has other tensors or a fixed
    batch axis."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"a generator has one input (z) and one output; the file has inputs "
            f"{[t.name for t in inputs]} and outputs {[t.name for t in outputs]}"
        )
    z, samples = inputs[0], outputs[0]
    for tensor in (z, samples):
        if tensor.type != FLOAT:
            raise ValueError(f"{tensor.name} is {tensor.type}; a generator's tensors are float32")
        if tensor.shape and isinstance(tensor.shape[0], int):
            raise ValueError(
                f"{tensor.name} has a fixed batch axis ({tensor.shape}): export it with a "
                "dynamic batch axis (torch.onnx.export(..., dynamic_shapes=...))"
            )
    dim, shape = declared.latent["dim"], list(declared.output_shape)
    value_range = None if declared.value_range is None else list(declared.value_range)
    return {
        "schema_version": 1,
        "name": declared.name,
        "kind": "gan",
        "description": declared.description or default_description(declared),
        "created": utc_now(),
        "imported": True,
        "versions": [],
        "latent_dim": dim,
        "latent": declared.latent,
        "input": {"name": z.name, "dtype": "float32", "shape": [-1, dim]},
        "output": {
            "name": samples.name,
            "dtype": "float32",
            "shape": [-1, *shape],
            "value_range": value_range,
        },
        "reference": declared.reference,
        "dataset": dataset,
    }


def check_runs(session: object, card: dict, output_shape: tuple[int, ...]) -> None:
    """Run the generator on CHECK_ROWS rows of its declared latents (the service's drawer);
    ValueError when a run fails or gives another shape than [rows, *output_shape]."""
    draw = generator_drawer(session, card, DEFAULT_MAX_BATCH)
    for rows in CHECK_ROWS:
        try:
            samples = draw(rows, GAN_SEED)
        except Exception as error:  # onnxruntime's own types: a wrong latent width, a fixed axis
            raise ValueError(
                f"running it on {rows} rows of z [{rows}, {card['latent_dim']}] failed: {error}"
            ) from None
        if samples.shape != (rows, *output_shape):
            raise ValueError(
                f"on z [{rows}, {card['latent_dim']}] it gives samples {list(samples.shape)}, not "
                f"the declared [{rows}, {', '.join(str(s) for s in output_shape)}]"
            )


def measure_range(
    session: object, card: dict, value_range: tuple[float, float] | None
) -> dict[str, Any]:
    """{"measured_range": [min, max], "n", "seed"} of its samples on the diagnostics' latents;
    ValueError when any is not finite or outside value_range by more than RANGE_TOLERANCE of
    its span."""
    n = sample_count(card["dataset"])
    samples = generator_drawer(session, card, DEFAULT_MAX_BATCH)(n, GAN_SEED)
    if not np.isfinite(samples).all():
        raise ValueError(f"its samples hold NaN or infinity (n {n}, seed {GAN_SEED})")
    low, high = float(samples.min()), float(samples.max())
    if value_range is not None:
        slack = RANGE_TOLERANCE * (value_range[1] - value_range[0])
        if low < value_range[0] - slack or high > value_range[1] + slack:
            raise ValueError(
                f"its samples lie in [{low:.6g}, {high:.6g}] (n {n}, seed {GAN_SEED}), outside "
                f"the declared value range {list(value_range)}: declare the range its output "
                "has (or none, for unbounded points)"
            )
    return {"measured_range": [low, high], "n": n, "seed": GAN_SEED}


def install(staging: Path, model_dir: Path, version: int, new: bool) -> None:
    """Move the staged folder into place: a new model's whole folder in one rename; else the
    new version's folder, then the card replacing the old one (os.replace, atomic)."""
    if new:
        os.rename(staging, model_dir)
        return
    os.rename(staging / str(version), model_dir / str(version))
    os.replace(staging / "card.json", model_dir / "card.json")


def previous_card(model_dir: Path, card: dict) -> dict | None:
    """The card already in model_dir (None when there is no folder), which a new version may
    extend only when it is an imported gan declaring the same latent and tensors; ValueError
    otherwise."""
    if not model_dir.exists():
        return None
    previous = read_card(model_dir)
    if previous is None or previous.get("kind") != "gan" or not previous.get("imported"):
        what = "a folder without card.json" if previous is None else "another kind of model"
        raise ValueError(f"{model_dir} already holds {what}; choose another --name")
    fields = ("latent", "input", "output", "reference")
    changed = [field for field in fields if previous.get(field) != card[field]]
    if changed:
        raise ValueError(
            f"{model_dir} holds an imported generator with another {', '.join(changed)}; a new "
            "version must match its card (or choose another --name)"
        )
    return previous


def default_description(declared: Declared) -> str:
    """A one-line description of an imported generator."""
    latent = declared.latent
    law = (
        "N(0, 1)" if latent["distribution"] == "normal" else f"U[{latent['low']}, {latent['high']}]"
    )
    shape = "x".join(str(s) for s in declared.output_shape)
    return (
        f"imported generator: z of {latent['dim']} {law} coordinates -> samples {shape}, "
        f"diagnosed against {declared.reference}."
    )
