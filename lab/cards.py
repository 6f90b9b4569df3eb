"""The model repository's contract: `<root>/<name>/card.json` + `<root>/<name>/<version>/*.onnx`.

One home for everything a card means: its JSON Schema (lab/schemas/card.schema.json) and the
model-name pattern taken from it; reading, validating and writing a card; the next version
number; file digests; the tensors a model takes; whether an ONNX file matches its card; a
classifier or embedding model's tensors; and a classifier reference's files with the classifier
model it names. The trainer writes cards with these functions, the service reads
them with the same ones.
"""

import hashlib
import json
import math
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
LATENT_KINDS = ("gan", "vae")  # kinds served as G(z): a GAN's generator, a VAE's decoder
GENERATOR_KINDS = (*LATENT_KINDS, "score")  # kinds that generate samples from their own ONNX files
ENSEMBLE = "ensemble"  # a kind that generates samples by drawing them from members
SERVABLE_KINDS = (*GENERATOR_KINDS, ENSEMBLE)  # kinds that generate samples
MEMBER_KINDS = GENERATOR_KINDS  # what an ensemble's members may be (never another ensemble)
WEIGHT_TOLERANCE = 1e-6  # an ensemble's weights must sum to 1 within this
FEATURE_KINDS = ("classifier", "embedding")  # kinds that turn images into classes or features
# card dtype -> onnxruntime's (int64: a conditional model's labels)
ONNX_DTYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)"}


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
    if "conditional" in card:
        check_conditional(card["conditional"])
    if card.get("kind") == ENSEMBLE:
        for version in card["versions"]:
            check_members(version["members"], f"versions/{version['version']}/members")


def check_members(members: list[dict], where: str = "members") -> None:
    """ValueError, naming the fix, unless an ensemble version's members (each {"model",
    "version", "weight"}) have weights summing to 1 (within WEIGHT_TOLERANCE) and no (model,
    version) twice. `where`: the place the message names."""
    weights = [member["weight"] for member in members]
    total = math.fsum(weights)
    if total <= 0.0:
        raise ValueError(f"{where}: the weights sum to 0; give at least one member weight 1")
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        scaled = ", ".join(
            f"{member['model']}:{member['weight'] / total:.6g}" for member in members
        )
        raise ValueError(
            f"{where}: the weights sum to {total:.6g}, not 1 (within {WEIGHT_TOLERANCE:g}); "
            f"divide each by their sum: {scaled}"
        )
    seen = set()
    for member in members:
        key = (member["model"], member["version"])
        if key in seen:
            raise ValueError(
                f"{where}: {member['model']} version {member['version']} is listed twice; "
                "list it once with the sum of its weights"
            )
        seen.add(key)


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


def check_conditional(conditional: dict) -> None:
    """ValueError unless a card's `conditional` has one weight per class, summing to 1."""
    weights, classes = conditional["weights"], conditional["classes"]
    if len(weights) != classes:
        raise ValueError(
            f"card.json invalid at conditional/weights: {len(weights)} weights for {classes} "
            "classes; give one per class"
        )
    if abs(math.fsum(weights) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(
            f"card.json invalid at conditional/weights: they sum to {math.fsum(weights):.6g}, not 1"
        )


def sample_contract(card: dict) -> dict:
    """What a generator card's samples are, for matching an ensemble with its members: its
    dataset, its reference, one sample's shape (its output's, without the batch axis) and its
    value range (a gan's or ensemble's output value_range, a score card's value_range; None for
    unbounded points)."""
    value_range = card.get("value_range", card["output"].get("value_range"))
    return {
        "dataset": card["dataset"],
        "reference": card["reference"],
        "sample shape": list(card["output"]["shape"][1:]),
        "value range": None if value_range is None else list(value_range),
    }


def check_member_kind(member: dict) -> None:
    """ValueError unless `member` (a card) is of a kind an ensemble draws from (MEMBER_KINDS),
    and not class-conditional (an ensemble's request has no labels to give it)."""
    if member.get("kind") not in MEMBER_KINDS:
        raise ValueError(
            f"member {member.get('name')!r} is a {member.get('kind')}, not one of "
            f"{', '.join(MEMBER_KINDS)}"
        )
    if "conditional" in member:
        raise ValueError(
            f"member {member.get('name')!r} is class-conditional; an ensemble draws from "
            "unconditional models only"
        )


def check_member(ensemble: dict, member: dict) -> None:
    """ValueError unless `member` (a card) can be one of `ensemble`'s members: of a member kind
    (check_member_kind) and with the same sample_contract, naming the first difference."""
    check_member_kind(member)
    wanted, found = sample_contract(ensemble), sample_contract(member)
    for key, value in wanted.items():
        if found[key] != value:
            raise ValueError(
                f"member {member['name']!r} is incompatible: its {key} is {found[key]!r}, "
                f"the ensemble's {value!r}"
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
    """A generator card's input tensor specs: [z] for a gan, [x, sigma] for a score model, and
    last the labels of a conditional model."""
    inputs = [card["input"]] + ([card["sigma_input"]] if card["kind"] == "score" else [])
    return inputs + ([card["conditional"]["input"]] if "conditional" in card else [])


def check_signature(session: ort.InferenceSession, card: dict) -> None:
    """Raise ValueError when the ONNX file's inputs or output (names, ranks, fixed widths)
    differ from the card: a gan takes `input`, a score model `input` and `sigma_input`."""
    check_tensors(session, tensor_inputs(card), card["output"])


def check_tensors(session: ort.InferenceSession, inputs: list[dict], output: dict) -> None:
    """ValueError unless the session's inputs and first output match the tensor specs (names,
    dtypes, ranks, fixed widths)."""
    actual_inputs = session.get_inputs()
    if len(actual_inputs) != len(inputs):
        names = [tensor.name for tensor in actual_inputs]
        raise ValueError(f"ONNX inputs {names} != card {[spec['name'] for spec in inputs]}")
    pairs = [*zip(inputs, actual_inputs, strict=True), (output, session.get_outputs()[0])]
    for expected, actual in pairs:
        check_tensor(expected, actual)


def check_tensor(expected: dict, actual: ort.NodeArg) -> None:
    """ValueError unless one ONNX tensor has the card's name, dtype, rank and fixed widths."""
    if actual.name != expected["name"]:
        raise ValueError(f"ONNX tensor {actual.name!r} != card {expected['name']!r}")
    if actual.type != ONNX_DTYPES[expected["dtype"]]:
        raise ValueError(f"ONNX {actual.name} is {actual.type}, card says {expected['dtype']}")
    fixed = [
        (a, b)
        for a, b in zip(actual.shape[1:], expected["shape"][1:], strict=False)
        if isinstance(a, int) and b != -1
    ]
    if len(actual.shape) != len(expected["shape"]) or any(a != b for a, b in fixed):
        raise ValueError(f"ONNX {actual.name} shape {actual.shape} != card {expected['shape']}")


def model_outputs(card: dict) -> list[dict]:
    """A classifier or embedding card's output tensor specs: its `output` (class scores or
    features) and, for a classifier that declares one, its `embedding_output`."""
    return [card["output"]] + ([card["embedding_output"]] if "embedding_output" in card else [])


def check_model(session: ort.InferenceSession, card: dict) -> None:
    """ValueError unless a classifier or embedding ONNX file takes the card's one `input` and
    has every output the card names (model_outputs), by name, dtype and shape."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = [tensor.name for tensor in inputs]
        raise ValueError(f"ONNX inputs {names} != card [{card['input']['name']!r}]")
    check_tensor(card["input"], inputs[0])
    actual = {tensor.name: tensor for tensor in session.get_outputs()}
    for expected in model_outputs(card):
        if expected["name"] not in actual:
            raise ValueError(
                f"ONNX outputs {sorted(actual)} lack the card's output {expected['name']!r}"
            )
        check_tensor(expected, actual[expected["name"]])


def checked_file(folder: Path, entry: dict) -> Path:
    """folder / entry["file"] after checking it against entry["sha256"]: ValueError naming
    `<folder name>/<file>` when the digest differs (FileNotFoundError when absent)."""
    path = folder / entry["file"]
    if sha256(path) != entry["sha256"]:
        raise ValueError(f"{folder.name}/{entry['file']}: sha256 differs from the card")
    return path


def newest_version(card: dict, number: int | None = None) -> dict:
    """The card's `versions` entry numbered `number`, its newest when None (KeyError when
    absent)."""
    if number is None:
        return max(card["versions"], key=lambda version: version["version"])
    return card_version(card, number)


@dataclass(frozen=True)
class FeatureModel:
    """One version of a classifier or embedding model: its card, its `versions` entry and its
    checked session (check_model)."""

    card: dict
    version: dict
    session: ort.InferenceSession


def load_feature_model(
    folder: Path, device: str, number: int | None = None, kind: str | None = None
) -> FeatureModel:
    """Version `number` (the newest when None) of the classifier or embedding model in `folder`
    (of `kind` when given): card validated, file checked against its sha256, session created on
    `device` and checked against the card. ValueError saying what is wrong otherwise
    (FileNotFoundError when a file is absent)."""
    card = read_card(folder)
    if card is None:
        raise FileNotFoundError(2, "no card", str(folder / "card.json"))
    validate_card(card)
    if card["kind"] not in ((kind,) if kind else FEATURE_KINDS):
        raise ValueError(f"{folder.name!r} is a {card['kind']} card, not {kind or 'a model'}")
    try:
        version = newest_version(card, number)
    except KeyError as error:
        raise ValueError(str(error.args[0])) from None
    session = runtime.create_session(checked_file(folder, version), device)
    check_model(session, card)
    return FeatureModel(card, version, session)


def classifier_spec(reference: dict, classifier: dict, feature_dim: int | None = None) -> dict:
    """A classifier reference's `reference` object with the tensors and rules of the classifier
    card it names (input, value_range, output, embedding_output, n_classes, confidence): what
    lab.classify and the diagnostics read. ValueError when the two disagree: n_modes must be
    n_classes ** channels, and the real-sample features (`feature_dim` wide) must be the
    channels' embeddings side by side."""
    keys = ("input", "value_range", "output", "embedding_output", "n_classes", "confidence")
    spec = {**reference, **{key: classifier[key] for key in keys if key in classifier}}
    channels, n_classes = spec["channels"], spec["n_classes"]
    if spec["n_modes"] != n_classes**channels:
        raise ValueError(
            f"n_modes {spec['n_modes']} != {n_classes} classes ** {channels} channels of "
            f"classifier {classifier['name']!r}"
        )
    if len(spec["weights"]) != spec["n_modes"]:
        raise ValueError(f"{len(spec['weights'])} weights for {spec['n_modes']} modes")
    width = (spec.get("embedding_output") or spec["output"])["shape"][1]
    if feature_dim is not None and feature_dim != channels * width:
        raise ValueError(
            f"features of width {feature_dim} != {channels} channels x {width} "
            f"of classifier {classifier['name']!r}"
        )
    return spec


def load_features(folder: Path, stored: dict) -> np.ndarray:
    """A reference's real-sample features (its card's `features` entry), float64 [N, D],
    read-only, checked against the sha256 and the declared shape."""
    features = np.load(checked_file(folder, stored), allow_pickle=False)
    if features.ndim != 2 or features.shape != (stored["n"], stored["dim"]):
        raise ValueError(
            f"{folder.name}/{stored['file']}: shape {list(features.shape)} != card "
            f"[{stored['n']}, {stored['dim']}]"
        )
    features = features.astype(np.float64)
    features.setflags(write=False)
    return features


@dataclass(frozen=True)
class ClassifierReference:
    """A classifier reference: its spec (classifier_spec: the card's `reference` object with its
    classifier's tensors), its classifier's session and its real samples' features (float64
    [N, D], read-only)."""

    spec: dict
    session: ort.InferenceSession
    features: np.ndarray


def load_classifier_reference(
    folder: Path, device: str, card: dict | None = None
) -> ClassifierReference:
    """The classifier reference in `folder` (a `reference` card of type classifier; `card` is
    its card.json, read when None) and the classifier model it names, a sibling folder of the
    same repository: files checked against their sha256, the session created on `device`.
    ValueError when a digest differs or the two cards disagree."""
    spec = (card or read_card(folder))["reference"]
    features = load_features(folder, spec["features"])
    classifier = load_feature_model(
        folder.parent / spec["classifier"], device, spec.get("classifier_version"), "classifier"
    )
    spec = classifier_spec(spec, classifier.card, features.shape[1])
    return ClassifierReference(spec, classifier.session, features)
