"""The full report (feature rules included) of finished GAN runs, beside the collapse table's
modes-only evaluation: the verdict, modes, coverage against identical distributions, near
duplicates and, for a class-conditional run, the per-class verdicts.

    python -m bench.full_reports runs/table/grid25/cgan/seed0 runs/table/grid25/cgan/seed1

Each run's generator draws the table's evaluation batch (eval_samples, seed 0; a conditional
run's labels drawn from the data's class mix, as the service draws them by default) and
lab.diagnostics.diagnose judges it, as the export-time diagnostics do. Prints a markdown table.
"""

import argparse
from collections import Counter
from pathlib import Path

import torch

from lab.diagnostics.classes import Classes
from trainer.evaluation import diagnose_samples
from trainer.training_loop import EVAL_SEED, restore

VERDICTS = ("collapsed", "partial_collapse", "inconclusive", "healthy")


def full_report(run_dir: Path) -> dict:
    """The full report of a GAN run's checkpoint on its evaluation batch."""
    state = restore(run_dir)
    n, classes = state.config.eval_samples, state.config.classes
    labels = state.labels(n, EVAL_SEED)
    drawn = None if labels is None else Classes(classes, labels)
    return diagnose_samples(state.samples(n, EVAL_SEED), state.dataset.name, classes=drawn)


def row(run_dir: Path, report: dict) -> str:
    """One markdown row: run, verdict, modes, coverage, near duplicates, class verdicts."""
    manifold = report["features"]["manifold"]
    cells = [
        f"`{run_dir}`",
        report["verdict"]["status"],
        f"{report['modes']['covered']} of {report['modes']['total']}",
        f"{manifold['coverage']:.3f} (identical {manifold['coverage_expected_identical']:.3f})",
        f"{report['duplicates']['near_fraction']:.1%}",
    ]
    if "classes" in report:
        counts = Counter(entry["verdict"] for entry in report["classes"]["per_class"])
        cells.append(" / ".join(str(counts[verdict]) for verdict in VERDICTS))
    else:
        cells.append("")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of GAN runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        "| run | verdict | modes | coverage | rows with a near-duplicate partner "
        "| classes: collapsed / partial / inconclusive / healthy |"
    )
    print("|---|---|---|---|---|---|")
    for run_dir in args.runs:
        print(row(run_dir, full_report(run_dir)), flush=True)


if __name__ == "__main__":
    main()
