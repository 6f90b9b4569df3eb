"""An embedding model derived from a classifier model of the repository: its embedding output
(a penultimate layer) served on its own (`python -m trainer export-embedding
--from-classifier NAME --name NAME`).

Nothing is re-exported: the classifier's ONNX file is copied byte for byte (the same sha256),
and the embedding card names the classifier's `input`, `value_range` and `embedding_output`
as its `output` (check_model allows the file's other output, the class scores). Parity is the
classifier's own, measured when that file was exported: the bytes are the same file, so it is
the same parity. Each version's `derived_from` records the classifier, its version and the
output (the sha256 is the classifier version's), so the model can be rebuilt and checked.
"""

import shutil
from pathlib import Path
from typing import Any

from lab.cards import checked_file, newest_version, read_card, validate_card
from trainer.onnx_export import export_model, utc_now


def classifier_card(models_dir: Path, classifier: str) -> dict[str, Any]:
    """The validated card of the classifier model `classifier`; ValueError saying what is
    wrong (absent, another kind, no embedding output)."""
    card = read_card(Path(models_dir) / classifier)
    if card is None:
        raise ValueError(f"no model {classifier!r} under {models_dir}")
    validate_card(card)
    if card["kind"] != "classifier":
        raise ValueError(f"{classifier!r} is a {card['kind']} model, not a classifier")
    if "embedding_output" not in card:
        raise ValueError(
            f"classifier {classifier!r} has no embedding_output (only class scores): export it "
            "with --embedding-output, or export an embedding network with --module"
        )
    return card


def derived_card(name: str, classifier: dict, versions: list[dict]) -> dict[str, Any]:
    """The embedding card of `name` listing `versions`, whose tensors are the classifier card's
    input, value_range and embedding_output."""
    width = classifier["embedding_output"]["shape"][1]
    newest = newest_version({"versions": versions})["derived_from"]
    card = {
        "schema_version": 1,
        "name": name,
        "kind": "embedding",
        "description": (
            f"The {width}-dimensional embedding output of classifier {newest['model']!r} "
            f"(version {newest['version']}), its penultimate layer, as an embedding model."
        ),
        "created": utc_now(),
        "input": classifier["input"],
        "value_range": classifier["value_range"],
        "output": classifier["embedding_output"],
        "feature_dim": width,
    }
    for key in ("dataset", "architecture"):
        if key in classifier:
            card[key] = classifier[key]
    return card | {"versions": versions}


def derive_embedding(
    models_dir: Path, classifier: str, name: str, version: int | None = None
) -> Path:
    """Add a version of the embedding model models_dir/<name> that is the newest version of
    the classifier model `classifier` (its file copied, checked against its sha256); the
    card's path. ValueError for a bad request (nothing written)."""
    card = classifier_card(models_dir, classifier)
    source = newest_version(card)
    source_file = checked_file(Path(models_dir) / classifier, source)

    def write_version(version_dir: Path, number: int) -> dict[str, Any]:
        version_dir.mkdir(parents=True)
        shutil.copyfile(source_file, version_dir / "model.onnx")
        keys = ("sha256", "opset", "ir_version", "parity")
        entry = {"version": number, "file": f"{number}/model.onnx"} | {k: source[k] for k in keys}
        output = card["embedding_output"]["name"]
        provenance = {"model": classifier, "version": source["version"], "output": output}
        return entry | {"derived_from": provenance}

    def make_card(_: Path, entry: dict, versions: list[dict]) -> dict[str, Any]:
        return derived_card(name, card, versions)

    return export_model(models_dir, name, "embedding", version, write_version, make_card)
