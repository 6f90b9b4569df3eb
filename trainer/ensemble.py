"""Write an ensemble card: other generators of the repository mixed by weight (docs/ensembles.md),
its diagnostics measured as the service draws it (lab.ensembles), with the `ensemble` section
that says which member put samples in which mode.

The card pins each member's version (the newest when none is named), takes the members' output
shape, value range, reference and dataset (every member must share them: lab.cards.check_member)
and adds a version to an existing ensemble card. Nothing is written when a member is missing or
incompatible or the weights do not sum to one (lab.cards.check_members).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.cards import (
    ENSEMBLE,
    check_member,
    check_member_kind,
    check_members,
    check_name,
    newest_version,
    next_version,
    read_card,
    sample_contract,
    write_card,
)
from trainer.diagnose import ensemble_diagnostics
from trainer.onnx_export import utc_now

SAMPLES_TENSOR = "samples"  # the name of an ensemble's output tensor in its card


@dataclass(frozen=True)
class MemberChoice:
    """One --member: a model of the repository, its version (None: the newest), its weight."""

    model: str
    version: int | None
    weight: float


def ensemble_card(
    models_dir: Path, name: str, choices: list[MemberChoice], description: str | None = None
) -> dict[str, Any]:
    """The card write_ensemble would write, without diagnostics: the existing card's versions
    (when models_dir/<name> holds an ensemble) and a new one with the chosen members. ValueError
    naming the fix for a bad name, a missing or incompatible member, or weights that do not
    sum to 1."""
    check_name(name)
    cards = [member_card(models_dir, name, choice.model) for choice in choices]
    members = [
        {
            "model": choice.model,
            "version": choice.version or newest_version(card)["version"],
            "weight": choice.weight,
        }
        for choice, card in zip(choices, cards, strict=True)
    ]
    check_members(members, "--member")
    for member, card in zip(members, cards, strict=True):
        if member["version"] not in [entry["version"] for entry in card["versions"]]:
            raise ValueError(f"member {member['model']!r} has no version {member['version']}")
    contract = sample_contract(cards[0])
    card = {
        "schema_version": 1,
        "name": name,
        "kind": ENSEMBLE,
        "description": description or describe(members),
        "created": utc_now(),
        "versions": [],
        "output": {
            "name": SAMPLES_TENSOR,
            "dtype": "float32",
            "shape": [-1, *contract["sample shape"]],
            "value_range": contract["value range"],
        },
        "reference": contract["reference"],
        "dataset": contract["dataset"],
    }
    for member in cards:
        check_member(card, member)
    previous = previous_versions(models_dir / name)
    number = next_version(models_dir / name, {"versions": previous})
    card["versions"] = [*previous, {"version": number, "members": members}]
    return card


def member_card(models_dir: Path, name: str, model: str) -> dict[str, Any]:
    """The card of the member `model`; ValueError when it is absent, the ensemble itself or of
    a kind an ensemble does not draw from."""
    if model == name:
        raise ValueError(f"the ensemble {name!r} cannot be its own member")
    card = read_card(Path(models_dir) / model)
    if card is None:
        raise ValueError(f"no model {model!r} in {models_dir}: name a gan or score model there")
    check_member_kind(card)
    return card


def previous_versions(model_dir: Path) -> list[dict[str, Any]]:
    """The versions of the ensemble card already in model_dir ([] when none); ValueError when
    the folder holds another kind."""
    card = read_card(model_dir)
    if card is None:
        return []
    if card.get("kind") != ENSEMBLE:
        raise ValueError(f"{model_dir} holds a {card.get('kind')} card, not an ensemble")
    return card["versions"]


def describe(members: list[dict[str, Any]]) -> str:
    """The default description: the members and their weights."""
    listed = ", ".join(f"{m['model']} v{m['version']} ({m['weight']:g})" for m in members)
    return f"ensemble of {listed}."


def write_ensemble(
    models_dir: Path, name: str, choices: list[MemberChoice], description: str | None = None
) -> Path:
    """Write models_dir/<name>/card.json (ensemble_card) with its diagnostics; its path."""
    models_dir = Path(models_dir)
    card = ensemble_card(models_dir, name, choices, description)
    card["diagnostics"] = ensemble_diagnostics(models_dir, card)
    (models_dir / name).mkdir(exist_ok=True)
    return write_card(models_dir / name, card)
