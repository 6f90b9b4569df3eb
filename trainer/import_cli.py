"""The `import-generator` subcommand: an ONNX generator this project did not train -> a folder
and card in the model repository, with its diagnostics measured (trainer.imports)."""

import argparse
import json
from pathlib import Path
from typing import Any

from trainer.cli_tools import add_command, or_usage_error, positive_int, value_range
from trainer.imports import Declared, check_generator, import_generator


def latent_spec(text: str) -> dict[str, Any]:
    """argparse type: "normal:D" or "uniform:LOW,HIGH:D" -> a card's `latent`."""
    parts = text.split(":")
    try:
        if parts[0] == "normal" and len(parts) == 2:
            return {"distribution": "normal", "dim": positive_int(parts[1])}
        if parts[0] == "uniform" and len(parts) == 3:
            low, high = (float(value) for value in parts[1].split(","))
            if low < high:
                return {
                    "distribution": "uniform",
                    "low": low,
                    "high": high,
                    "dim": positive_int(parts[2]),
                }
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{text!r}: expected normal:D or uniform:LOW,HIGH:D (LOW < HIGH, D >= 1)"
    )


def shape_spec(text: str) -> tuple[int, ...]:
    """argparse type: one sample's shape, "2" or "3,8,8" (each axis >= 1)."""
    try:
        return tuple(positive_int(axis) for axis in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected axes >= 1, e.g. 2 or 3,8,8") from None


def add_import_command(commands: argparse._SubParsersAction) -> None:
    """`import-generator`: an ONNX generator this project did not train -> folder + card."""
    help = "import an ONNX generator trained elsewhere: folder, card and diagnostics"
    command = add_command(commands, "import-generator", help, run_import_generator)
    command.add_argument("onnx_file", type=Path, help="the generator: z [batch, D] -> samples")
    command.add_argument("--name", required=True, help="model name (folder under models/)")
    command.add_argument(
        "--latent", type=latent_spec, required=True, metavar="normal:D|uniform:LOW,HIGH:D"
    )
    command.add_argument(
        "--output-shape", type=shape_spec, required=True, metavar="2|3,8,8", help="one sample"
    )
    command.add_argument(
        "--value-range", type=value_range, metavar="LOW,HIGH", help="default: unbounded points"
    )
    command.add_argument("--reference", required=True, help="the reference card to diagnose by")
    command.add_argument("--description", help="default: generated from the declaration")
    command.add_argument("--models-dir", type=Path, default=Path("models"))
    command.add_argument(
        "--dry-run", action="store_true", help="check the file, print the card, write nothing"
    )


def run_import_generator(args: argparse.Namespace) -> int:
    """Check and import the file (a file that does not match its declaration: usage error);
    print the verdict and the card's path, or with --dry-run the card it would write."""
    declared = Declared(
        args.name,
        args.latent,
        args.output_shape,
        args.value_range,
        args.reference,
        args.description,
    )
    if args.dry_run:
        card = or_usage_error(args, check_generator, args.onnx_file, declared, args.models_dir)
        print(json.dumps(card, indent=2))
        return 0
    path = or_usage_error(args, import_generator, args.onnx_file, declared, args.models_dir)
    verdict = json.loads(path.read_text())["diagnostics"]["verdict"]["status"]
    print(f"{verdict}: {path}")
    return 0
