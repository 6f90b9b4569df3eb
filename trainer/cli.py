"""The trainer's command line: a thin layer that validates choices and calls one library
function with named parameters.

    python -m trainer train PRESET_OR_CONFIG [--steps N --seed S ...] [--run-dir DIR]
                                             [--dry-run] [--no-resume]
    python -m trainer export RUN_DIR --name NAME [--models-dir models] [--version V]
    python -m trainer reference DATASET [--models-dir models]
    python -m trainer diagnose MODEL_DIR
    python -m trainer classifier [--models-dir models] [--steps N --seed S] [--dry-run]
    python -m trainer table [--benchmarks ...] [--methods ...] [--seeds 5] [--jobs J]
                            [--steps N] [--quick] [--runs-dir runs/table] [--out docs/results]

Bad choices and ranges are argparse usage errors (exit status 2, a message, no traceback).
"""

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig, preset_names, resolve_config
from trainer.datasets import DATASETS
from trainer.edm.cli import (
    add_score_flags,
    is_score_preset,
    is_score_run,
    run_score_export,
    run_score_train,
)
from trainer.losses import LOSSES
from trainer.mitigations import MITIGATIONS
from trainer.nets import ARCHITECTURES

REGISTRIES = {"dataset": DATASETS, "arch": ARCHITECTURES, "loss": LOSSES}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def steps_override(text: str) -> int | dict[str, int]:
    """argparse type: "N" (every benchmark) or "BENCH=N,BENCH=N" (per benchmark), N >= 1."""
    if "=" not in text:
        return positive_int(text)
    steps = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        steps[name.strip()] = positive_int(value)
    return steps


def mitigation_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated registered mitigation names ("" for none)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in MITIGATIONS]
    if unknown:
        known = ", ".join(MITIGATIONS.names())
        raise argparse.ArgumentTypeError(f"unknown mitigation {unknown[0]!r}; choose from {known}")
    return names


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the dataclass; default None = not given."""
    for field in dataclasses.fields(TrainConfig):
        if field.name == "mitigations":
            parser.add_argument(
                "--mitigations",
                type=mitigation_list,
                default=None,
                metavar="NAME,NAME",
                help=f"comma-separated, from {', '.join(MITIGATIONS.names())} (or the preset's)",
            )
            continue
        registry = REGISTRIES.get(field.name)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=field.type,
            default=None,
            choices=registry.names() if registry else None,
            metavar=None if registry else field.type.__name__.upper(),
            help=f"default {field.default!r} (or the preset's)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The `train`, `export` and `reference` subcommands."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a GAN or a score model from a preset or a JSON config file"
    )
    train.add_argument("preset", help=f"a preset ({', '.join(preset_names())}) or a .json file")
    add_config_flags(train)
    add_score_flags(train)  # score presets ("kind": "score") take these as well
    train.add_argument("--run-dir", type=Path, help="default runs/<preset>-seed<seed>")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config, exit")
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train, parser=train)

    export = commands.add_parser("export", help="checkpoint -> ONNX + card in the model repo")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--name", required=True, help="model name (folder under models/)")
    export.add_argument("--models-dir", type=Path, default=Path("models"))
    export.add_argument("--version", type=positive_int, help="default: previous largest + 1")
    export.add_argument("--description", help="default: generated from the training config")
    export.set_defaults(handler=run_export, parser=export)

    reference = commands.add_parser("reference", help="write a dataset's reference card")
    reference.add_argument("dataset", choices=DATASETS.names())
    reference.add_argument("--models-dir", type=Path, default=Path("models"))
    reference.set_defaults(handler=run_reference, parser=reference)
    add_classifier_command(commands)
    add_table_command(commands)
    add_fuse_command(commands)
    add_half_command(commands)
    add_diagnose_command(commands)
    return parser


def add_half_command(commands: argparse._SubParsersAction) -> None:
    """`half`: a GAN's float16 graph beside each version's file, when parity allows."""
    half = commands.add_parser(
        "half", help="add a float16 graph (for CUDA) to each version of a GAN, where parity allows"
    )
    half.add_argument("model_dir", type=Path, help="models/<name> of a gan")
    half.set_defaults(handler=run_half, parser=half)


def run_half(args: argparse.Namespace) -> int:
    """Call add_half; print each version's parity and the card's path."""
    from trainer.half import add_half

    try:
        path, results = add_half(args.model_dir)
    except ValueError as error:  # not a gan, a graph with control flow
        args.parser.error(str(error))
    for result in results:
        verdict = "kept" if result["kept"] else "not kept"
        print(
            f"{result['file']}: max |fp16 - fp32| {result['max_abs_error']:.3g} "
            f"(tolerance {result['tolerance']:.3g}): {verdict}"
        )
    print(path)
    return 0


def add_diagnose_command(commands: argparse._SubParsersAction) -> None:
    """`diagnose`: measure a model card's diagnostics again from its ONNX files."""
    diagnose = commands.add_parser(
        "diagnose", help="measure an exported model's card diagnostics again (newest version)"
    )
    diagnose.add_argument("model_dir", type=Path, help="models/<name> of a gan or score model")
    diagnose.set_defaults(handler=run_diagnose, parser=diagnose)


def run_diagnose(args: argparse.Namespace) -> int:
    """Call rediagnose; print the verdict and the card's path."""
    from trainer.diagnose import rediagnose

    try:
        path = rediagnose(args.model_dir)
    except ValueError as error:  # no such card, or not a generator
        args.parser.error(str(error))
    verdict = json.loads(path.read_text())["diagnostics"]["verdict"]["status"]
    print(f"{verdict}: {path}")
    return 0


def add_fuse_command(commands: argparse._SubParsersAction) -> None:
    """`fuse`: a score model's whole sampler as one ONNX graph, beside each version's file."""
    fuse = commands.add_parser(
        "fuse", help="add the fused trajectory graph (sampler as one ONNX graph) to a score model"
    )
    fuse.add_argument("model_dir", type=Path, help="models/<name> of a score model")
    fuse.add_argument("--steps", type=positive_int, help="default: the card's sampler steps")
    fuse.add_argument("--sampler", choices=("euler", "heun"), help="default: the card's")
    fuse.set_defaults(handler=run_fuse, parser=fuse)


def run_fuse(args: argparse.Namespace) -> int:
    """Call add_fused and print the card's path."""
    from trainer.edm.fused import add_fused

    try:
        print(add_fused(args.model_dir, args.steps, args.sampler))
    except ValueError as error:  # not a score model, a denoiser with control flow
        args.parser.error(str(error))
    return 0


def add_classifier_command(commands: argparse._SubParsersAction) -> None:
    """`classifier`: train the digit classifier, write the digits and stacked-digits references."""
    classifier = commands.add_parser(
        "classifier", help="train the digit classifier; write the image datasets' references"
    )
    classifier.add_argument("--models-dir", type=Path, default=Path("models"))
    classifier.add_argument("--steps", type=positive_int, help="default: ClassifierConfig's")
    classifier.add_argument("--seed", type=int, help="default: ClassifierConfig's")
    classifier.add_argument("--dry-run", action="store_true", help="print the config, exit")
    classifier.set_defaults(handler=run_classifier, parser=classifier)


def add_table_command(commands: argparse._SubParsersAction) -> None:
    """`table`: the collapse benchmarks x methods x seeds -> docs/results/collapse.{md,json,png}."""
    from trainer.table import BENCHMARKS, METHODS

    table = commands.add_parser(
        "table", help="run the collapse benchmarks x methods x seeds; write the results table"
    )
    table.add_argument("--benchmarks", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    table.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    table.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 (default 5)")
    table.add_argument("--jobs", type=positive_int, default=1, help="runs trained in parallel")
    table.add_argument(
        "--steps",
        type=steps_override,
        help="override the presets' steps: N for every benchmark, or BENCH=N,BENCH=N",
    )
    table.add_argument(
        "--no-train", action="store_true", help="write the table from the finished runs only"
    )
    table.add_argument("--runs-dir", type=Path, default=Path("runs/table"))
    table.add_argument("--out", type=Path, default=Path("docs/results"))
    table.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in seconds: 2 benchmarks x 2 methods x 2 seeds, 20 steps each",
    )
    table.set_defaults(handler=run_table, parser=table)


def run_train(args: argparse.Namespace) -> int:
    """Resolve the config (defaults < preset < flags), then call training_loop."""
    if is_score_preset(args.preset):
        return run_score_train(args)
    parser = args.parser
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    try:
        config = resolve_config(args.preset, overrides)
    except ValueError as error:
        parser.error(str(error))
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from trainer.training_loop import check_run_dir, training_loop  # heavy imports

    return train_in_run_dir(args, config, check_run_dir, training_loop)


def train_in_run_dir(
    args: argparse.Namespace,
    config: Any,
    check_run_dir: Callable[..., None],
    loop: Callable[..., Any],
) -> int:
    """The run dir (given, or runs/<preset>-seed<seed>), checked for another recipe (a usage
    error), then loop(config, run_dir, resume, progress); shared by GAN and score training."""
    run_dir = args.run_dir or Path("runs") / f"{Path(args.preset).stem}-seed{config.seed}"
    try:
        check_run_dir(config, run_dir, resume=not args.no_resume)
    except ValueError as error:  # resuming a run dir trained with another recipe
        args.parser.error(str(error))
    loop(config, run_dir, resume=not args.no_resume, progress=not args.no_progress)
    print(f"run dir: {run_dir}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Call export_gan and print the card's path."""
    parser = args.parser
    if not (args.run_dir / "checkpoint.pt").is_file():
        parser.error(f"no checkpoint.pt in {args.run_dir}")
    if is_score_run(args.run_dir):
        return run_score_export(args)
    from trainer.export import export_gan

    try:
        card = export_gan(args.run_dir, args.models_dir, args.name, args.version, args.description)
    except ValueError as error:  # bad name, existing version, a non-gan card of that name
        parser.error(str(error))
    print(card)
    return 0


def run_reference(args: argparse.Namespace) -> int:
    """Call export_reference and print the card's path."""
    from trainer.datasets import GaussianMixture, get_dataset
    from trainer.export import export_reference

    if not isinstance(get_dataset(args.dataset), GaussianMixture):
        args.parser.error(
            f"{args.dataset} is an image dataset: its reference is the digit classifier, "
            "written by `python -m trainer classifier`"
        )

    print(export_reference(args.dataset, args.models_dir))
    return 0


def run_classifier(args: argparse.Namespace) -> int:
    """Train the classifier and write the references; print accuracy, time and card paths."""
    from trainer.classifier import ClassifierConfig, build_classifier_references

    try:
        given = {"steps": args.steps, "seed": args.seed}
        config = ClassifierConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as error:
        args.parser.error(str(error))
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    try:
        result = build_classifier_references(args.models_dir, config)
    except ValueError as error:  # a reference folder already there
        args.parser.error(str(error))
    print(
        f"held-out accuracy {result['held_out_accuracy']:.4f}, "
        f"trained in {result['train_seconds']:.1f} s"
    )
    for card in result["cards"]:
        print(card)
    return 0


def run_table(args: argparse.Namespace) -> int:
    """Call build_table with the chosen (or --quick) plan and print the table's path."""
    import shlex

    from trainer.table import QUICK, build_table

    command = shlex.join(["python", "-m", "trainer", *args.argv])
    if args.quick:
        plan = {**QUICK, "overrides": {k: dict(v) for k, v in QUICK["overrides"].items()}}
    else:
        plan = {"benchmarks": args.benchmarks, "methods": args.methods, "seeds": args.seeds}
        plan["overrides"] = {benchmark: {} for benchmark in args.benchmarks}
    for benchmark, fields in plan["overrides"].items():
        if isinstance(args.steps, int):
            fields["steps"] = args.steps
        elif args.steps and benchmark in args.steps:
            fields["steps"] = args.steps[benchmark]
    try:
        path = build_table(
            runs_dir=args.runs_dir,
            out_dir=args.out,
            command=command,
            jobs=args.jobs,
            train=not args.no_train,
            **plan,
        )
    except ValueError as error:  # a cell without a preset, a run dir of another recipe
        args.parser.error(str(error))
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (argparse exits 2 on usage errors)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # the table records the command that made it
    return args.handler(args)
