"""The trainer's command line: a thin layer that validates choices and calls one library
function with named parameters.

    python -m trainer train PRESET_OR_CONFIG [--steps N --seed S ...] [--run-dir DIR]
                                             [--dry-run] [--no-resume]
                                             [--device auto|cpu|cuda|cuda:N] [--amp auto|on|off]
                                             [--keep-snapshots N] [--stop-on-collapse]
                                             [--tensorboard]
    torchrun --standalone --nproc_per_node N -m trainer train PRESET_OR_CONFIG ...  (N ranks)
    python -m trainer export RUN_DIR --name NAME [--models-dir models] [--version V]
                                     [--step S | --best]
    python -m trainer plot RUN_DIR [--out FILE]
    python -m trainer reference DATASET [--models-dir models]
    python -m trainer diagnose MODEL_DIR
    python -m trainer ensemble --name NAME --member MODEL[@VERSION]:WEIGHT [--member ...]
                               [--models-dir models] [--description TEXT] [--dry-run]
    python -m trainer import-generator MODEL.onnx --name NAME --latent normal:D|uniform:LO,HI:D
                                       --output-shape 2|3,8,8 [--value-range LO,HI]
                                       --reference REF [--models-dir models] [--dry-run]
    python -m trainer classifier [--dataset digits|mnist] [--models-dir models]
                                 [--steps N --seed S] [--dry-run]
    python -m trainer classifier-reference DATASET [--models-dir models]
    python -m trainer export-classifier --module PKG.MOD:CLASS --state-dict FILE
                                        --input-shape C,H,W --value-range LO,HI --classes N
                                        --name NAME [--embedding-output NAME] [...]
    python -m trainer export-embedding --module PKG.MOD:CLASS --state-dict FILE
                                       --input-shape C,H,W --value-range LO,HI --name NAME
    python -m trainer export-embedding --from-classifier CLASSIFIER --name NAME
    python -m trainer migrate-reference MODELS/REFERENCE --classifier NAME
    python -m trainer boost PRESET --members T --out DIR [--seed S ...] [--name NAME]
    python -m trainer table [--benchmarks ...] [--methods ...] [--seeds 5] [--jobs J]
                            [--steps N] [--grid FIELD=V1,V2 ...] [--quick] [--runs-dir DIR]
                            [--out DIR]

`train` and `export` dispatch by model family (trainer.families): the preset's or the run
dir's "kind". Bad choices and ranges are argparse usage errors (exit status 2, a message, no
traceback).
"""

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from trainer.boost_cli import add_boost_command
from trainer.classifier import (
    REFERENCE_DATASETS,
    REFERENCE_SOURCES,
    build_classifier_references,
    classifier_config,
    export_classifier_reference,
)
from trainer.cli_tools import add_command, or_usage_error, positive_int
from trainer.datasets import DATASETS, GaussianMixture, get_dataset
from trainer.datasets.weighted import read_pool
from trainer.device_cli import add_device_flags, train_placed
from trainer.devices import AMP_MODES
from trainer.diagnose import rediagnose
from trainer.edm.fused import add_fused
from trainer.ensemble import MemberChoice, ensemble_card, write_ensemble
from trainer.export import export_reference
from trainer.families import (
    DEFAULT_KIND,
    Family,
    ordered_families,
    preset_family,
    run_family,
)
from trainer.feature_cli import add_feature_commands
from trainer.grid import grid_axis_type, grid_settings
from trainer.half import add_half
from trainer.import_cli import add_import_command
from trainer.losses import LOSSES
from trainer.mitigations import MITIGATIONS
from trainer.monitor_cli import (
    add_monitor_flags,
    add_plot_command,
    add_snapshot_choice,
    exported_run_dir,
    monitor_options,
)
from trainer.nets import ARCHITECTURES, SCORE_NETWORKS, VAE_NETWORKS
from trainer.nets.conditional import PROJECTION_INITS
from trainer.settings import preset_names
from trainer.table import (
    ABLATION_METHODS,
    BENCHMARKS,
    HARDER_BENCHMARKS,
    METHODS,
    PACGAN_PAPER_METHODS,
    QUICK,
    build_table,
)

# The choices of the flags that name registered things: --arch names a GAN architecture, a score
# network or a VAE network, which the preset's family then checks (its config's message).
CHOICES = {
    "dataset": DATASETS.names(),
    "arch": sorted({*ARCHITECTURES.names(), *SCORE_NETWORKS.names(), *VAE_NETWORKS.names()}),
    "loss": LOSSES.names(),
    "projection_init": PROJECTION_INITS,
}
# `table`'s default (runs folder, output folder), full and --quick: runs/ is git-ignored.
TABLE_DIRS = {
    False: (Path("runs/table"), Path("docs/results")),
    True: (Path("runs/table-quick"), Path("runs/table-quick/results")),
}


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
    """One flag per config field of every family, typed from its dataclass, the default
    family's first; default None = not given. Other families' own fields say whose they are."""
    seen: set[str] = set()
    for family in ordered_families():
        owner = "" if family.kind == DEFAULT_KIND else f"{family.kind} presets: "
        for field in dataclasses.fields(family.config):
            if field.name in seen or field.name not in family.field_names():
                continue
            seen.add(field.name)
            if field.name == "mitigations":
                parser.add_argument(
                    "--mitigations",
                    type=mitigation_list,
                    default=None,
                    metavar="NAME,NAME",
                    help=f"comma-separated, from {', '.join(MITIGATIONS.names())} "
                    "(or the preset's)",
                )
                continue
            choices = CHOICES.get(field.name)
            parser.add_argument(
                f"--{field.name.replace('_', '-')}",
                dest=field.name,
                type=field.type,
                default=None,
                choices=choices,
                metavar=None if choices else field.type.__name__.upper(),
                help=f"{owner}default {field.default!r} (or the preset's)",
            )


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand: train, export, reference, classifier, classifier-reference, table,
    fuse, half, diagnose, plot."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    help = "train a GAN, a score model or a VAE from a preset or a JSON config file"
    train_command = add_command(commands, "train", help, run_train)
    train_command.add_argument(
        "preset", help=f"a preset ({', '.join(preset_names())}) or a .json file"
    )
    add_config_flags(train_command)
    train_command.add_argument("--run-dir", type=Path, help="default runs/<preset>-seed<seed>")
    train_command.add_argument(
        "--dry-run", action="store_true", help="print the resolved config, exit"
    )
    train_command.add_argument(
        "--no-resume", action="store_true", help="ignore an existing checkpoint"
    )
    train_command.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_flags(train_command)
    add_monitor_flags(train_command)
    add_export_commands(commands)
    add_classifier_command(commands)
    add_table_command(commands)
    add_model_commands(commands)
    add_feature_commands(commands)
    add_import_command(commands)
    add_plot_command(commands)
    boost = add_boost_command(commands)
    add_config_flags(boost)
    boost.set_defaults(config_overrides=config_overrides)
    return parser


def add_export_commands(commands: argparse._SubParsersAction) -> None:
    """`export` (a run dir -> ONNX + card) and `reference` (a mixture's reference card)."""
    help = "checkpoint -> ONNX + card in the model repo"
    export = add_command(commands, "export", help, run_export)
    export.add_argument("run_dir", type=Path)
    export.add_argument("--name", required=True, help="model name (folder under models/)")
    export.add_argument("--models-dir", type=Path, default=Path("models"))
    export.add_argument("--version", type=positive_int, help="default: previous largest + 1")
    export.add_argument("--description", help="default: generated from the training config")
    add_snapshot_choice(export)
    help = "write a dataset's reference card"
    reference = add_command(commands, "reference", help, run_reference)
    reference.add_argument("dataset", choices=DATASETS.names())
    reference.add_argument("--models-dir", type=Path, default=Path("models"))


def add_model_commands(commands: argparse._SubParsersAction) -> None:
    """`fuse`, `half` and `diagnose`: derived graphs and diagnostics of an exported model."""
    help = "add the fused trajectory graph (sampler as one ONNX graph) to a score model"
    fuse = add_command(commands, "fuse", help, run_fuse)
    fuse.add_argument("model_dir", type=Path, help="models/<name> of a score model")
    fuse.add_argument("--steps", type=positive_int, help="default: the card's sampler steps")
    fuse.add_argument("--sampler", choices=("euler", "heun"), help="default: the card's")
    help = "add a float16 graph (for CUDA) to each version of a GAN, where parity allows"
    half = add_command(commands, "half", help, run_half)
    half.add_argument("model_dir", type=Path, help="models/<name> of a gan")
    help = "measure an exported model's card diagnostics again (newest version)"
    diagnose = add_command(commands, "diagnose", help, run_diagnose)
    diagnose.add_argument(
        "model_dir", type=Path, help="models/<name> of a gan, score model or ensemble"
    )
    help = "write an ensemble card: models of the repository mixed by weight, diagnosed"
    ensemble = add_command(commands, "ensemble", help, run_ensemble)
    ensemble.add_argument("--name", required=True, help="model name (folder under models/)")
    ensemble.add_argument(
        "--member",
        dest="members",
        type=member_choice,
        action="append",
        required=True,
        metavar="MODEL[@VERSION]:WEIGHT",
        help="a gan or score model of the repository (its newest version unless @VERSION) "
        "and its weight; repeat for each member, the weights summing to 1",
    )
    ensemble.add_argument("--models-dir", type=Path, default=Path("models"))
    ensemble.add_argument("--description", help="default: the members and their weights")
    ensemble.add_argument(
        "--dry-run", action="store_true", help="check the members, print the card, write nothing"
    )


def add_classifier_command(commands: argparse._SubParsersAction) -> None:
    """`classifier`: train a digit classifier, write it (digit-classifier or mnist-classifier)
    and the two references naming it (digits and stacked-digits, or mnist and stacked-mnist);
    `classifier-reference`: write another reference (stacked-digits4) from the classifier
    already written."""
    help = "train a digit classifier; write it and the image datasets' references"
    classifier = add_command(commands, "classifier", help, run_classifier)
    classifier.add_argument(
        "--dataset",
        choices=list(REFERENCE_DATASETS),
        default="digits",
        help="the digit source: digits (8x8: digit-classifier; references digits, "
        "stacked-digits) or mnist (28x28: mnist-classifier; references mnist, stacked-mnist); "
        "default digits",
    )
    classifier.add_argument("--models-dir", type=Path, default=Path("models"))
    classifier.add_argument("--steps", type=positive_int, help="default: the dataset's recipe")
    classifier.add_argument("--seed", type=int, help="default: the dataset's recipe")
    classifier.add_argument("--dry-run", action="store_true", help="print the config, exit")
    help = "write an image dataset's reference from the classifier already in the repository"
    reference = add_command(commands, "classifier-reference", help, run_classifier_reference)
    reference.add_argument(
        "dataset",
        choices=list(REFERENCE_SOURCES),
        help="the reference (and image dataset) to write, e.g. stacked-digits4 (4 channels, "
        "10,000 modes), counted by its source's classifier (digit-classifier or "
        "mnist-classifier), which is not trained again",
    )
    reference.add_argument("--models-dir", type=Path, default=Path("models"))


def add_table_command(commands: argparse._SubParsersAction) -> None:
    """`table`: the collapse benchmarks x methods x seeds -> docs/results/collapse.{md,json,png}."""
    help = "run the collapse benchmarks x methods x seeds; write the results table"
    table = add_command(commands, "table", help, run_table)
    table.add_argument(
        "--benchmarks",
        nargs="+",
        choices=BENCHMARKS + HARDER_BENCHMARKS,
        default=list(BENCHMARKS),
        help=f"default: {' '.join(BENCHMARKS)}",
    )
    table.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS + ABLATION_METHODS + PACGAN_PAPER_METHODS,
        default=list(METHODS),
        help="default: every method but the ablation's (ring8, grid25) and the pacgan-paper-* "
        "ones (400k steps each)",
    )
    table.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 (default 5)")
    table.add_argument("--jobs", type=positive_int, default=1, help="runs trained in parallel")
    table.add_argument(
        "--steps",
        type=steps_override,
        help="override the presets' steps: N for every benchmark, or BENCH=N,BENCH=N",
    )
    table.add_argument(
        "--grid",
        action="append",
        type=grid_axis_type([family.config for family in ordered_families()]),
        metavar="FIELD=V1,V2",
        help="sweep a config field over values, one row per value (repeat for a product of "
        "axes), e.g. --grid lr_d=1e-4,2e-4",
    )
    table.add_argument(
        "--no-train", action="store_true", help="write the table from the finished runs only"
    )
    table.add_argument(
        "--device",
        default="cpu",
        help="where runs left to train train: cpu (default), auto, cuda or cuda:N; result.json "
        "records it (finished runs are reused wherever they trained)",
    )
    table.add_argument("--amp", choices=AMP_MODES, default="auto", help="as for `train`")
    table.add_argument(
        "--runs-dir",
        type=Path,
        help=f"default {TABLE_DIRS[False][0]} ({TABLE_DIRS[True][0]} quick)",
    )
    table.add_argument(
        "--out", type=Path, help=f"default {TABLE_DIRS[False][1]} ({TABLE_DIRS[True][1]} quick)"
    )
    table.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in seconds: 2 benchmarks x 2 methods x 2 seeds, 20 steps each, in "
        "its own folders (never the committed docs/results or the full table's runs)",
    )


def config_overrides(args: argparse.Namespace, family: Family) -> dict[str, Any]:
    """The flags of the family's config fields; a flag that only other families have (a GAN's
    --loss with a score preset, a VAE's --beta with a GAN preset) is a usage error naming
    whose it is."""
    given = {
        name
        for other in ordered_families()
        for name in other.field_names() - family.field_names()
        if getattr(args, name, None) is not None
    }
    if given:
        owners = {
            name: "/".join(o.label for o in ordered_families() if name in o.field_names())
            for name in given
        }
        details = ", ".join(f"{name} ({owners[name]})" for name in sorted(given))
        args.parser.error(f"{details}: settings not used by {family.kind} presets")
    return {name: getattr(args, name, None) for name in family.field_names()}


def run_train(args: argparse.Namespace) -> int:
    """Resolve the preset's family's config (defaults < preset < flags), check the run dir
    (given, or runs/<preset>-seed<seed>) for another recipe, then train the family's build."""
    family = preset_family(args.preset)
    config = or_usage_error(args, family.resolve, args.preset, config_overrides(args, family))
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    run_dir = args.run_dir or Path("runs") / f"{Path(args.preset).stem}-seed{config.seed}"
    if getattr(config, "data_weights", ""):  # a pool file (trainer boost): readable, or say why
        or_usage_error(args, read_pool, config.data_weights)
    monitoring = monitor_options(args)
    if train_placed(args, family, config, run_dir, monitoring):  # on --device, across ranks
        print(f"run dir: {run_dir}")  # from the writer (rank 0) only
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Call the run dir's family's exporter on its final checkpoint or the chosen snapshot
    (--step, --best) and print the card's path."""
    if not (args.run_dir / "checkpoint.pt").is_file():
        args.parser.error(f"no checkpoint.pt in {args.run_dir}")
    export = run_family(args.run_dir).export
    with exported_run_dir(args) as run_dir:
        where = (run_dir, args.models_dir, args.name, args.version, args.description)
        print(or_usage_error(args, export, *where))
    return 0


def run_reference(args: argparse.Namespace) -> int:
    """Call export_reference and print the card's path."""
    if not isinstance(get_dataset(args.dataset), GaussianMixture):
        args.parser.error(
            f"{args.dataset} is an image dataset: its reference is the digit classifier, "
            "written by `python -m trainer classifier` (--dataset mnist for the 28x28 ones) "
            f"or from it by `python -m trainer classifier-reference {args.dataset}`"
        )
    print(export_reference(args.dataset, args.models_dir))
    return 0


def run_fuse(args: argparse.Namespace) -> int:
    """Call add_fused (not a score model, a denoiser with control flow: usage errors) and print
    the card's path."""
    print(or_usage_error(args, add_fused, args.model_dir, args.steps, args.sampler))
    return 0


def run_half(args: argparse.Namespace) -> int:
    """Call add_half (not a gan, a graph with control flow: usage errors); print each version's
    parity and the card's path."""
    path, results = or_usage_error(args, add_half, args.model_dir)
    for result in results:
        verdict = "kept" if result["kept"] else "not kept"
        print(
            f"{result['file']}: max |fp16 - fp32| {result['max_abs_error']:.3g} "
            f"(tolerance {result['tolerance']:.3g}): {verdict}"
        )
    print(path)
    return 0


def run_diagnose(args: argparse.Namespace) -> int:
    """Call rediagnose (no such card, not a generator: usage errors); print the verdict and the
    card's path."""
    path = or_usage_error(args, rediagnose, args.model_dir)
    verdict = json.loads(path.read_text())["diagnostics"]["verdict"]["status"]
    print(f"{verdict}: {path}")
    return 0


def member_choice(text: str) -> MemberChoice:
    """argparse type: "MODEL:WEIGHT" or "MODEL@VERSION:WEIGHT", 0 < WEIGHT <= 1."""
    model, _, weight = text.rpartition(":")
    model, _, version = model.partition("@")
    try:
        choice = MemberChoice(model, positive_int(version) if version else None, float(weight))
    except (ValueError, argparse.ArgumentTypeError):
        choice = None
    if choice is None or not model or not 0 < choice.weight <= 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected MODEL:WEIGHT or MODEL@VERSION:WEIGHT with 0 < WEIGHT <= 1, "
            "e.g. ring8-gan:0.5"
        )
    return choice


def run_ensemble(args: argparse.Namespace) -> int:
    """Call write_ensemble (a missing or incompatible member, weights not summing to 1: usage
    errors naming the fix); print the verdict and the card's path, or with --dry-run the card
    it would write without diagnostics."""
    where = (args.models_dir, args.name, args.members, args.description)
    if args.dry_run:
        print(json.dumps(or_usage_error(args, ensemble_card, *where), indent=2))
        return 0
    path = or_usage_error(args, write_ensemble, *where)
    verdict = json.loads(path.read_text())["diagnostics"]["verdict"]["status"]
    print(f"{verdict}: {path}")
    return 0


def run_classifier(args: argparse.Namespace) -> int:
    """Train the classifier and write the references; print accuracy, time and card paths."""
    given = {"steps": args.steps, "seed": args.seed}
    fields = {key: value for key, value in given.items() if value is not None}
    config = or_usage_error(args, classifier_config, args.dataset, fields)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    # a reference folder already there is a usage error
    result = or_usage_error(args, build_classifier_references, args.models_dir, config)
    print(
        f"held-out accuracy {result['held_out_accuracy']:.4f}, "
        f"trained in {result['train_seconds']:.1f} s"
    )
    for card in result["cards"]:
        print(card)
    return 0


def run_classifier_reference(args: argparse.Namespace) -> int:
    """Call export_classifier_reference (no classifier, a reference already there: usage
    errors) and print the card's path."""
    print(or_usage_error(args, export_classifier_reference, args.dataset, args.models_dir))
    return 0


def table_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen (or --quick) benchmarks, methods, seeds, per-benchmark overrides and --grid
    settings (a field with two axes: ValueError)."""
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
    plan["settings"] = grid_settings(args.grid)
    return plan


def table_dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    """(runs folder, output folder): the flags, else TABLE_DIRS for the mode. A quick table
    has folders of its own, so a smoke run never overwrites the committed table or reuses the
    full table's runs."""
    runs_dir, out_dir = TABLE_DIRS[bool(args.quick)]
    return args.runs_dir or runs_dir, args.out or out_dir


def run_table(args: argparse.Namespace) -> int:
    """Call build_table with table_plan (a cell without a preset, a run dir of another
    recipe: usage errors) and print the table's path."""
    command = shlex.join(["python", "-m", "trainer", *args.argv])
    train = not args.no_train

    runs_dir, out_dir = table_dirs(args)

    def build() -> Path:
        return build_table(
            runs_dir=runs_dir,
            out_dir=out_dir,
            command=command,
            jobs=args.jobs,
            train=train,
            device=args.device,
            amp=args.amp,
            **table_plan(args),
        )

    print(or_usage_error(args, build))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (argparse exits 2 on usage errors)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # the table records the command that made it
    return args.handler(args)
