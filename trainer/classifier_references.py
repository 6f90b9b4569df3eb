"""Classifier references in the model repository: a `reference` card of type classifier that
names a classifier model (a card of kind classifier) and keeps only its own files, the real
samples' features.

    models/<classifier>/card.json, <version>/model.onnx    kind classifier: the ONNX file
    models/<reference>/card.json, <version>/features.npy   kind reference: modes + features

Two ways in: `write_classifier_reference` (a trainer that just exported its classifier, e.g.
trainer.classifier for the 8x8 and the 28x28 digits) and `migrate_reference`, which turns a
reference of the older layout, whose card carried the classifier's ONNX file itself
(`reference.file`), into the two cards above: the ONNX bytes move to the classifier's folder
unchanged (same sha256), and several references sharing one file share one classifier model.
`python -m trainer migrate-reference models/<reference> --classifier <name>` runs it.
"""

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lab.cards import check_name, newest_version, read_card, sha256, validate_card, write_card
from lab.diagnostics.classifier import CONFIDENCE_THRESHOLD
from trainer.onnx_export import utc_now

LEGACY_CLASSIFIER_KEYS = ("input", "outputs", "value_range", "held_out_accuracy", "held_out")
VERSION_KEYS = ("file", "sha256", "opset", "ir_version", "parity")


def classifier_model_card(
    name: str,
    description: str,
    tensors: dict[str, Any],
    versions: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A card of kind classifier. tensors: input, value_range, output (with `scores`),
    optionally embedding_output, n_classes and confidence (max_probability at
    CONFIDENCE_THRESHOLD when absent); extra: held_out, classes, dataset, architecture,
    training."""
    confidence = {"type": "max_probability", "threshold": CONFIDENCE_THRESHOLD}
    return {
        "schema_version": 1,
        "name": name,
        "kind": "classifier",
        "description": description,
        "created": utc_now(),
        "confidence": confidence,
        **tensors,
        **(extra or {}),
        "versions": versions,
    }


def reference_card(
    name: str,
    dataset: str,
    description: str,
    classifier: dict[str, Any],
    modes: dict[str, Any],
    features: dict[str, Any],
) -> dict[str, Any]:
    """A `reference` card of type classifier naming the newest version of the `classifier`
    card. modes: channels, n_modes, weights and optionally apply; features: the card's
    `features` entry (file, sha256, n, dim, ...)."""
    return {
        "schema_version": 1,
        "name": name,
        "kind": "reference",
        "description": description,
        "created": utc_now(),
        "dataset": dataset,
        "reference": {
            "type": "classifier",
            "classifier": classifier["name"],
            "classifier_version": newest_version(classifier)["version"],
            **modes,
            "features": features,
        },
    }


def save_features(reference_dir: Path, features: np.ndarray, extra: dict[str, Any]) -> dict:
    """reference_dir/1/features.npy (float32 [N, D]); the card's `features` entry."""
    path = reference_dir / "1" / "features.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(features, dtype=np.float32), allow_pickle=False)
    n, dim = features.shape
    return {"file": "1/features.npy", "sha256": sha256(path), "n": n, "dim": dim, **extra}


def write_classifier_reference(
    models_dir: Path,
    name: str,
    dataset: str,
    description: str,
    classifier: dict[str, Any],
    modes: dict[str, Any],
    features: tuple[np.ndarray, dict[str, Any]],
) -> Path:
    """Write models_dir/<name>: 1/features.npy (features[0], float32 [N, D], with the entry's
    extra keys features[1]) and the card naming `classifier`; the card's path. ValueError when
    the folder already holds a card (nothing written)."""
    check_name(name)
    reference_dir = Path(models_dir) / name
    if (reference_dir / "card.json").exists() or (reference_dir / "1").exists():
        raise ValueError(f"{reference_dir} already holds a reference; remove it first")
    try:
        entry = save_features(reference_dir, *features)
        card = reference_card(name, dataset, description, classifier, modes, entry)
        return write_card(reference_dir, card)
    except BaseException:
        shutil.rmtree(reference_dir, ignore_errors=True)
        raise


def legacy_classifier_card(reference: dict[str, Any], name: str, card: dict) -> dict[str, Any]:
    """The classifier card described by an old-layout reference object (`reference` of type
    classifier with its own file, outputs [logits, embedding]), as version 1 of `name`."""
    logits, *embedding = reference["outputs"]
    tensors = {
        "input": reference["input"],
        "value_range": reference["value_range"],
        "output": {**logits, "scores": "logits"},
        **({"embedding_output": embedding[0]} if embedding else {}),
        "n_classes": logits["shape"][1],
    }
    held_out = {"accuracy": reference["held_out_accuracy"], **reference.get("held_out", {})}
    extra = {"held_out": held_out, "dataset": card["dataset"]}
    if "training" in card:
        extra["training"] = card["training"]
    version = {"version": 1, **{key: reference[key] for key in VERSION_KEYS}}
    version["file"] = "1/model.onnx"
    description = f"Mode classifier of {card['dataset']}, moved out of reference {card['name']!r}."
    return classifier_model_card(name, description, tensors, [version], extra)


def migrate_reference(reference_dir: Path, classifier_name: str) -> tuple[Path, Path]:
    """Turn an old-layout classifier reference (its card carries the ONNX file) into a
    classifier model `classifier_name` beside it plus a reference naming that model; (the
    classifier card's path, the reference card's path).

    The ONNX bytes move unchanged. When the classifier folder already holds a card, its newest
    version must be the same file (sha256), and is shared. ValueError for a reference of
    another layout or a classifier folder holding another file; the reference's old ONNX file
    is removed only once both new cards are written.
    """
    check_name(classifier_name)
    reference_dir = Path(reference_dir)
    card = read_card(reference_dir)
    reference = (card or {}).get("reference") or {}
    if reference.get("type") != "classifier" or "file" not in reference:
        raise ValueError(f"{reference_dir} holds no classifier reference of the old layout")
    old_file = reference_dir / reference["file"]
    if sha256(old_file) != reference["sha256"]:
        raise ValueError(f"{old_file}: sha256 differs from the card; not migrating it")
    classifier_dir = reference_dir.parent / classifier_name
    classifier = read_card(classifier_dir) or add_legacy_classifier(
        classifier_dir, old_file, legacy_classifier_card(reference, classifier_name, card)
    )
    if newest_version(classifier)["sha256"] != reference["sha256"]:
        raise ValueError(
            f"{classifier_dir} holds another classifier file; choose another --classifier"
        )
    modes = {key: reference[key] for key in ("channels", "n_modes", "weights", "apply")}
    rewritten = reference_card(
        card["name"], card["dataset"], card["description"], classifier, modes, reference["features"]
    )
    rewritten["created"] = card.get("created", rewritten["created"])
    path = write_card(reference_dir, rewritten)
    old_file.unlink()
    return classifier_dir / "card.json", path


def add_legacy_classifier(classifier_dir: Path, onnx_file: Path, card: dict[str, Any]) -> dict:
    """Copy onnx_file to classifier_dir/1/model.onnx and write `card` there; the card.
    ValueError when the folder exists (nothing written)."""
    validate_card(card)
    if classifier_dir.exists():
        raise ValueError(f"{classifier_dir} exists without a card; remove it or choose another")
    (classifier_dir / "1").mkdir(parents=True)
    try:
        shutil.copyfile(onnx_file, classifier_dir / "1" / "model.onnx")
        write_card(classifier_dir, card)
    except BaseException:
        shutil.rmtree(classifier_dir)
        raise
    return card
