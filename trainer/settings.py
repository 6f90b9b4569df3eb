"""What every model family's config shares: presets, the JSON type check, resolution and the
resume rule. Each family keeps its frozen dataclass of defaults (trainer.config.TrainConfig,
trainer.edm.config.ScoreConfig) and its range checks; this module knows none of them.

Resolution order: the dataclass defaults < preset (a small JSON file in trainer/presets/, or any
JSON file path) < explicit overrides (CLI flags). Unknown keys are an error everywhere.
"""

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    """Names of the bundled presets (trainer/presets/<name>.json)."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.json"))


def preset_path(preset: str) -> Path:
    """A bundled preset name or a path to a JSON config file -> its path (ValueError if none)."""
    if (PRESETS_DIR / f"{preset}.json").is_file():
        return PRESETS_DIR / f"{preset}.json"
    if preset.endswith(".json") and Path(preset).is_file():
        return Path(preset)
    raise ValueError(
        f"unknown preset {preset!r}; choose from {', '.join(preset_names())} "
        "or give a path to a .json config file"
    )


def read_json(preset: str) -> dict[str, Any]:
    """A preset's (or config file's) JSON object; ValueError when it is not one."""
    path = preset_path(preset)
    fields = json.loads(path.read_text())
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: a preset must be a JSON object")
    return fields


def preset_kind(preset: str) -> str:
    """A preset's model family: its "kind" ("gan" when absent); ValueError for unknown presets."""
    return read_json(preset).get("kind", "gan")


def field_types(config_class: type) -> dict[str, Any]:
    """{field name: annotated type} of a config dataclass."""
    return {field.name: field.type for field in dataclasses.fields(config_class)}


def check_types(config_class: type, fields: dict[str, Any], source: str) -> None:
    """ValueError unless every key is a field of config_class holding a value of its type.

    JSON has no tuples and writes 1 for 1.0, so a tuple[str, ...] field takes a list (or a
    tuple) of names and a float field takes an int; bools are never numbers.
    """
    types = field_types(config_class)
    unknown = sorted(set(fields) - set(types))
    if unknown:
        raise ValueError(f"{source}: unknown config keys {unknown}; known: {sorted(types)}")
    for key, value in fields.items():
        expected = types[key]
        if typing.get_origin(expected) is tuple:  # a JSON list (or a tuple) of names
            ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
            if not ok:
                raise ValueError(f"{source}: {key} must be a list of names, got {value!r}")
            continue
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True  # JSON writes 1e-4 as a float but 1 as an int
        if not ok:
            raise ValueError(f"{source}: {key} must be {expected.__name__}, got {value!r}")


def resolve_fields(
    config_class: type, preset: str | None, overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """The checked fields of preset < overrides (None values in overrides are skipped), to
    build config_class from (its defaults fill the rest)."""
    fields = {}
    if preset is not None:
        fields = read_json(preset)
        check_types(config_class, fields, str(preset_path(preset)))
    explicit = {key: value for key, value in (overrides or {}).items() if value is not None}
    check_types(config_class, explicit, "overrides")
    return fields | explicit


def as_field_types(config_class: type, fields: dict[str, Any]) -> dict[str, Any]:
    """JSON ints given for float fields become floats (so config.json round-trips equal)."""
    types = field_types(config_class)
    return {k: float(v) if types[k] is float else v for k, v in fields.items()}


def check_same_recipe(saved: dict[str, Any], current: dict[str, Any], resumable: set[str]) -> None:
    """ValueError naming every field outside `resumable` that differs between a checkpoint's
    config and the current one."""
    changed = sorted(k for k in current if k not in resumable and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"cannot resume: config changed ({details}); use a new run dir")


# Range rules by name: (holds, how the message says it). `not holds` also catches NaN.
RANGES = {
    "at_least_one": (lambda value: value >= 1, ">= 1"),
    "non_negative": (lambda value: value >= 0, ">= 0"),
    "positive": (lambda value: value > 0, "> 0"),
    "below_one": (lambda value: 0 <= value < 1, "in [0, 1)"),
}


def check_ranges(config: Any, **fields_by_rule: tuple[str, ...]) -> None:
    """ValueError "<field> must be <rule>, got <value>" for the first field of `config` out of
    its range; fields_by_rule maps a RANGES name to the fields it applies to."""
    for rule, fields in fields_by_rule.items():
        holds, wording = RANGES[rule]
        for field in fields:
            value = getattr(config, field)
            if not holds(value):
                raise ValueError(f"{field} must be {wording}, got {value}")
