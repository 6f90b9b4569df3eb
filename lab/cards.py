"""The model repository's contract: `<root>/<name>/card.json` + `<root>/<name>/<version>/*.onnx`.

One home for everything a card means: its JSON Schema (lab/schemas/card.schema.json) and the
model-name pattern taken from it; reading, validating and writing a card; the next version
number; file digests; the tensors a model takes; whether an ONNX file matches its card; and a
classifier reference's files. The trainer writes cards with these functions, the service reads
them with the same ones.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort

from lab import runtime

SCHEMA_PATH = Path(__file__).parent / "schemas" / "card.schema.json"
SERVABLE_KINDS = ("gan", "score")  # kinds that generate samples


@cache
def card_schema() -> dict:
    """The JSON Schema every card must satisfy (lab/schemas/card.schema.json)."""
    return json.loads(SCHEMA_PATH.read_text())


# A model or reference name: the schema's $defs.name, the one spelling of the rule.
NAME_RULE = card_schema()["$defs"]["name"]["pattern"]
NAME = re.compile(NAME_RULE)


def check_name(name: str) -> None:
    """ValueError unless `name` is a valid model-repository folder name (NAME)."""
    if not NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: lower-case letters, digits, '.', '_', "
            "'-', starting with a letter or digit, at most 64 characters"
        )


def validate_card(card: object) -> None:
    """Raise ValueError with the first schema violation, as `path: message`, or the first
    latent declaration the schema cannot check (check_latent)."""
    validator = jsonschema.Draft202012Validator(card_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(card))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(card)"
        raise ValueError(f"card.json invalid at {where}: {error.message}")
    if card.get("kind") == "gan" and "latent" in card:
        check_latent(card)


def check_latent(card: dict) -> None:
    """ValueError unless a gan card's declared `latent` has the card's latent_dim and, when
    uniform, low < high."""
    latent = card["latent"]
    if latent["dim"] != card["latent_dim"]:
        raise ValueError(
            f"card.json invalid at latent/dim: {latent['dim']} != latent_dim {card['latent_dim']}"
        )
    if latent["distribution"] == "uniform" and not latent["low"] < latent["high"]:
        raise ValueError(
            f"card.json invalid at latent: uniform low {latent['low']} must be < high "
            f"{latent['high']}"
        )


def card_latent(card: dict) -> dict:
    """A gan card's latent distribution: its `latent` (an imported generator declares it),
    else the standard normal of every generator this project trains,
    {"distribution": "normal", "dim": latent_dim}."""
    return card.get("latent") or {"distribution": "normal", "dim": card["latent_dim"]}


def sha256(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays and tuples -> plain JSON values, recursively."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_card(model_dir: Path) -> dict[str, Any] | None:
    """models/<name>/card.json as a dict, or None when absent."""
    path = model_dir / "card.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_card(model_dir: Path, card: dict[str, Any]) -> Path:
    """Validate against the card schema, then write card.json atomically; returns its path."""
    card = to_jsonable(card)
    validate_card(card)
    path = model_dir / "card.json"
    temporary = model_dir / "card.json.tmp"
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    temporary.replace(path)
    return path


def next_version(model_dir: Path, card: dict[str, Any] | None) -> int:
    """1 + the largest version in the card or among the numeric sub-folders (1 when none)."""
    versions = [entry["version"] for entry in (card or {}).get("versions", [])]
    if model_dir.is_dir():
        versions += [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def card_version(card: dict, number: int) -> dict:
    """The entry of card["versions"] numbered `number` (KeyError when absent)."""
    for version in card["versions"]:
        if version["version"] == number:
            return version
    raise KeyError(f"{card['name']} has no version {number}")


def tensor_inputs(card: dict) -> list[dict]:
    """A generator card's input tensor specs: [z] for a gan, [x, sigma] for a score model."""
    return [card["input"]] + ([card["sigma_input"]] if card["kind"] == "score" else [])


def check_signature(session: ort.InferenceSession, card: dict) -> None:
    """Raise ValueError when the ONNX file's inputs or output (names, ranks, fixed widths)
    differ from the card: a gan takes `input`, a score model `input` and `sigma_input`."""
    check_tensors(session, tensor_inputs(card), card["output"])


def check_tensors(session: ort.InferenceSession, inputs: list[dict], output: dict) -> None:
    """ValueError unless the session's inputs and first output match the tensor specs (names,
    ranks, fixed widths)."""
    actual_inputs = session.get_inputs()
    if len(actual_inputs) != len(inputs):
        names = [tensor.name for tensor in actual_inputs]
        raise ValueError(f"ONNX inputs {names} != card {[spec['name'] for spec in inputs]}")
    pairs = [*zip(inputs, actual_inputs, strict=True), (output, session.get_outputs()[0])]
    for expected, actual in pairs:
        if actual.name != expected["name"]:
            raise ValueError(f"ONNX tensor {actual.name!r} != card {expected['name']!r}")
        fixed = [
            (a, b)
            for a, b in zip(actual.shape[1:], expected["shape"][1:], strict=False)
            if isinstance(a, int) and b != -1
        ]
        if len(actual.shape) != len(expected["shape"]) or any(a != b for a, b in fixed):
            raise ValueError(f"ONNX {actual.name} shape {actual.shape} != card {expected['shape']}")


def checked_file(folder: Path, entry: dict) -> Path:
    """folder / entry["file"] after checking it against entry["sha256"]: ValueError naming
    `<folder name>/<file>` when the digest differs (FileNotFoundError when absent)."""
    path = folder / entry["file"]
    if sha256(path) != entry["sha256"]:
        raise ValueError(f"{folder.name}/{entry['file']}: sha256 differs from the card")
    return path


@dataclass(frozen=True)
class ClassifierReference:
    """A classifier reference's card object (`reference`), its classifier's session and its
    real samples' features (float64 [N, D], read-only)."""

    spec: dict
    session: ort.InferenceSession
    features: np.ndarray


def load_classifier_reference(
    folder: Path, device: str, card: dict | None = None
) -> ClassifierReference:
    """The classifier reference in `folder` (a `reference` card of type classifier; `card` is
    its card.json, read when None): both files checked against their sha256, the session
    created on `device`. ValueError when the card has no features or a digest differs."""
    spec = (card or read_card(folder))["reference"]
    stored = spec.get("features")
    if stored is None:
        raise ValueError("classifier reference without `features` (real-sample embeddings)")
    session = runtime.create_session(checked_file(folder, spec), device)
    features = np.load(checked_file(folder, stored), allow_pickle=False).astype(np.float64)
    features.setflags(write=False)
    return ClassifierReference(spec, session, features)
