"""Hyperparameter sweeps for `python -m trainer table --grid FIELD=V1,V2 [--grid ...]`.

A grid axis is one config field and its values; several axes make their product. Each point
of the grid is a `setting`, a tuple of (field, value) pairs that overrides every preset of the
table (after the per-benchmark overrides such as --steps), trains in its own run directory
(`<benchmark>/<method>/<setting>/seed<k>`) and makes its own row, labelled by the setting, in
the same table. Only fields holding one number or name can be swept (not `mitigations`: a
method is a preset), and `seed` has its own axis (--seeds).
"""

import argparse
import dataclasses
import itertools
from typing import Any

Setting = tuple[tuple[str, Any], ...]  # ((field, value), ...) in the order of the axes
NOT_SWEPT = {"seed": "--seeds", "mitigations": "--methods (a method is a preset)"}


def sweepable_fields(configs: list[type]) -> dict[str, type]:
    """Field name -> its type (int, float or str), over the config dataclasses (the first
    one to define a field gives its type)."""
    fields: dict[str, type] = {}
    for config in configs:
        for field in dataclasses.fields(config):
            if field.type in (int, float, str) and field.name not in NOT_SWEPT:
                fields.setdefault(field.name, field.type)
    return fields


def grid_axis_type(configs: list[type]) -> Any:
    """argparse type of one --grid axis, "FIELD=V1,V2,...", typed by the configs' fields:
    -> (field, (value, ...)) with distinct values."""
    fields = sweepable_fields(configs)

    def parse(text: str) -> tuple[str, tuple[Any, ...]]:
        name, sign, values = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sign or not values.strip():
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected FIELD=V1,V2 (e.g. lr_d=1e-4,2e-4)"
            )
        if name in NOT_SWEPT:
            raise argparse.ArgumentTypeError(
                f"{name} is not swept by --grid: use {NOT_SWEPT[name]}"
            )
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise argparse.ArgumentTypeError(f"unknown config field {name!r}; choose from {known}")
        try:
            parsed = tuple(fields[name](value.strip()) for value in values.split(","))
        except ValueError:
            kind = fields[name].__name__
            raise argparse.ArgumentTypeError(f"{text!r}: {name} takes {kind} values") from None
        if len(set(parsed)) != len(parsed):
            raise argparse.ArgumentTypeError(f"{text!r}: a value is repeated")
        return name, parsed

    return parse


def grid_settings(axes: list[tuple[str, tuple[Any, ...]]] | None) -> list[Setting]:
    """Every point of the axes' product, in order; [()] (one empty setting) without axes.
    ValueError when a field has two axes."""
    axes = axes or []
    names = [name for name, _ in axes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--grid names {', '.join(repeated)} twice: give one axis per field")
    products = itertools.product(*(values for _, values in axes))
    return [tuple(zip(names, point, strict=True)) for point in products]


def setting_name(setting: Setting) -> str:
    """ "lr_d=0.0001,lr_g=0.001": a setting's folder name and row label ("" for none); values
    as Python prints them (floats round-trip exactly, so two settings never share a name)."""
    return ",".join(f"{name}={value}" for name, value in setting)
