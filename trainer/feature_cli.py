"""The subcommands for classifier and embedding models: `export-classifier` and
`export-embedding` (a user's torch network + state_dict -> a model of the repository,
trainer.feature_export; or, with --from-classifier, a classifier model's embedding output as an
embedding model, trainer.derived_embedding) and `migrate-reference` (an old-layout classifier
reference -> a classifier model + a reference naming it, trainer.classifier_references)."""

import argparse
import json
from pathlib import Path

from lab.diagnostics.classifier import CONFIDENCE_THRESHOLD
from trainer.classifier_references import migrate_reference
from trainer.cli_tools import add_command, or_usage_error, positive_int, value_range
from trainer.derived_embedding import derive_embedding
from trainer.feature_export import FeatureExport, export_feature_model
from trainer.onnx_export import PARITY_TOLERANCE


def shape_triple(text: str) -> tuple[int, int, int]:
    """argparse type: "C,H,W", three integers >= 1."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W integers, got {text!r}") from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W integers >= 1, got {text!r}")
    return values


def json_object(text: str) -> dict:
    """argparse type: a JSON object (the network's constructor arguments)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_feature_commands(commands: argparse._SubParsersAction) -> None:
    """export-classifier, export-embedding and migrate-reference."""
    help = "a torch classifier (module + state_dict) -> a classifier model (ONNX + card)"
    classifier = add_command(commands, "export-classifier", help, run_export_feature_model)
    add_network_flags(classifier)
    classifier.add_argument("--classes", type=positive_int, required=True, dest="n_classes")
    classifier.add_argument(
        "--scores", choices=("logits", "probabilities"), default="logits", help="first output"
    )
    classifier.add_argument("--embedding-output", help="name of a second output [batch, E]")
    classifier.add_argument(
        "--threshold", type=float, default=CONFIDENCE_THRESHOLD, help="confidence rule"
    )
    help = "a torch feature extractor (module + state_dict) -> an embedding model (ONNX + card)"
    embedding = add_command(commands, "export-embedding", help, run_export_embedding)
    add_network_flags(embedding, required=False)
    embedding.add_argument(
        "--from-classifier",
        metavar="NAME",
        help="instead of --module ...: serve this classifier model's embedding output",
    )
    help = "split an old-layout classifier reference into a classifier model + a reference"
    migrate = add_command(commands, "migrate-reference", help, run_migrate_reference)
    migrate.add_argument("reference_dir", type=Path, help="models/<reference>")
    migrate.add_argument("--classifier", required=True, help="the classifier model's name")


NETWORK_FLAGS = ("module", "state_dict", "input_shape", "value_range")  # without a classifier


def add_network_flags(command: argparse.ArgumentParser, required: bool = True) -> None:
    """What both exports take: the network, its weights, its input and where it goes
    (required=False: export-embedding checks them itself, as --from-classifier needs none)."""
    command.add_argument("--module", required=required, help="package.module:ClassName")
    command.add_argument("--init-args", type=json_object, default={}, help="JSON object")
    command.add_argument("--state-dict", type=Path, required=required, help="torch.save'd weights")
    command.add_argument("--input-shape", type=shape_triple, required=required, help="C,H,W")
    command.add_argument("--value-range", type=value_range, required=required, help="LOW,HIGH")
    command.add_argument("--name", required=True, help="model name (folder under models/)")
    command.add_argument("--output", help="name of the first output (default: by kind)")
    command.add_argument("--models-dir", type=Path, default=Path("models"))
    command.add_argument("--version", type=positive_int, help="default: previous largest + 1")
    command.add_argument("--parity-tolerance", type=float, default=PARITY_TOLERANCE)
    command.add_argument("--dry-run", action="store_true", help="print the request, exit")


def run_export_feature_model(args: argparse.Namespace) -> int:
    """Export the network (usage errors for a bad request or a failing parity); print the
    card's path and the parity measured."""
    fields = {k: v for k, v in vars(args).items() if k in FeatureExport.__dataclass_fields__}
    request = or_usage_error(args, lambda: FeatureExport(**fields))
    if args.dry_run:
        print(json.dumps({**vars(request), "kind": request.kind}, indent=2, default=str))
        return 0
    path = or_usage_error(args, export_feature_model, request)
    card = json.loads(path.read_text())
    newest = max(card["versions"], key=lambda version: version["version"])
    print(f"{card['kind']} {card['name']} version {newest['version']}: {path}")
    print(f"parity: max |torch - onnxruntime| = {newest['parity']['max_abs_error']:.3g}")
    return 0


def run_export_embedding(args: argparse.Namespace) -> int:
    """export-embedding: a user's network (the NETWORK_FLAGS required), or with
    --from-classifier a classifier model's embedding output (none of them allowed)."""
    given = [f"--{flag.replace('_', '-')}" for flag in NETWORK_FLAGS if getattr(args, flag)]
    if args.from_classifier is None:
        missing = [f"--{f.replace('_', '-')}" for f in NETWORK_FLAGS if not getattr(args, f)]
        if missing:
            args.parser.error(f"the following arguments are required: {', '.join(missing)}")
        return run_export_feature_model(args)
    if given:
        args.parser.error(f"--from-classifier takes the classifier's network: drop {given}")
    if args.dry_run:
        print(json.dumps({"from_classifier": args.from_classifier, "name": args.name}))
        return 0
    path = or_usage_error(
        args, derive_embedding, args.models_dir, args.from_classifier, args.name, args.version
    )
    card = json.loads(path.read_text())
    newest = max(card["versions"], key=lambda version: version["version"])
    source = newest["derived_from"]
    print(f"embedding {card['name']} version {newest['version']}: {path}")
    print(
        f"output {source['output']!r} of {source['model']} version {source['version']} "
        f"(the same file, sha256 {newest['sha256'][:12]}...; parity as exported)"
    )
    return 0


def run_migrate_reference(args: argparse.Namespace) -> int:
    """Migrate (usage errors for another layout or a clashing classifier); print both cards."""
    paths = or_usage_error(args, migrate_reference, args.reference_dir, args.classifier)
    for path in paths:
        print(path)
    return 0
