"""Benchmark: a run split across torchrun processes (gloo, CPU) against the same run in one
process, from the same seed.

    python -m bench.distributed_parity                             # ring8-gan, 10/100/1000 steps
    python -m bench.distributed_parity --presets ring8-wgan-gp grid25-edm --steps 10 100
    python -m bench.distributed_parity --processes 4
    python -m bench.distributed_parity --presets ring8-gan ring8-wgan-gp --seeds 5  # full presets

Both runs go through the real CLI (`python -m trainer train`, and `torchrun --standalone
--nproc_per_node N -m trainer train`) with one thread per process. The ranks draw the same
global batch as the single process and average their shards' gradients, so the runs differ
only in the order of floating-point reductions (trainer/distributed.py); the table shows how
far that takes the weights (the largest difference over every network tensor, and relative to
the largest weight) and the last evaluation's numbers. For scale, the "one ulp" column trains
one process twice in this process, the second time with every weight of the first network
(G, or the denoiser) moved by one float32 ulp at step 0: how far the recipe's own dynamics
carry a perturbation of rounding size. Prints a markdown table.

With --seeds N the runs are the presets' own (every step, unless --steps names one count),
seeds 0..N-1 in one and in N processes, and the table compares what the collapse table
compares over seeds: the mean and standard deviation of modes, high-quality share and KL, the
verdicts, and whether the two means differ by less than two standard errors of their
difference (the tolerance for runs whose weights part after a few hundred steps, as a GAN's do).
The runs' folder is printed first; `--tabulate FOLDER` prints the table of the finished seed
pairs in a folder again (of a run cut short too), training nothing.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from trainer.families import preset_family

# The checkpoint entries holding network weights, by family (trainer.families).
NETWORKS = {"gan": ("generator", "discriminator"), "score": ("denoiser", "ema")}
EVALUATION = ("modes_covered", "high_quality_fraction", "kl")  # the papers' protocol


def train_command(preset: str, processes: int, run_dir: Path, flags: list[str]) -> list[str]:
    """`python -m trainer train PRESET FLAGS --run-dir RUN_DIR` on the CPU, under torchrun
    (one host, `processes` ranks) when processes > 1."""
    launcher = [sys.executable, "-m"]
    if processes > 1:
        launcher += ["torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    options = ["--run-dir", str(run_dir), "--device", "cpu", "--no-progress"]
    return launcher + ["trainer", "train", preset, *flags, *options]


def run_training(preset: str, processes: int, run_dir: Path, flags: list[str]) -> float:
    """Train in `processes` processes of one thread each (train_command): wall seconds.
    RuntimeError with the output when the command fails."""
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run(
        train_command(preset, processes, run_dir, flags),
        env=environment,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"training failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return time.monotonic() - started


def weight_difference(one: Path, other: Path) -> tuple[float, float]:
    """(max |w_one - w_other|, max |w_one|) over every network tensor of two run dirs'
    checkpoints (the same family and architecture)."""
    first, second = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (one, other))
    differences, sizes = [0.0], [0.0]
    for network in NETWORKS[first.get("kind", "gan")]:
        for name, tensor in first[network].items():
            if tensor.is_floating_point():
                differences.append((tensor - second[network][name]).abs().max().item())
                sizes.append(tensor.abs().max().item())
    return max(differences), max(sizes)


def nudged_difference(preset: str, steps: int) -> float:
    """max |w - w'| over every network tensor after `steps` steps of two one-process runs of
    `preset`, the second with the first network's weights moved by one ulp at step 0."""
    family = preset_family(preset)
    config = family.resolve(preset, {"steps": steps, "eval_every": 0})
    states = [family.build(config, None) for _ in range(2)]
    networks = NETWORKS[config.kind]
    with torch.no_grad():
        for weight in getattr(states[1], networks[0]).parameters():
            weight.copy_(torch.nextafter(weight, torch.full_like(weight, float("inf"))))
    for state in states:
        while state.step < steps:
            state.train_step()
    pairs = [
        (getattr(states[0], network).state_dict(), getattr(states[1], network).state_dict())
        for network in networks
    ]
    return max(
        (first[name] - second[name]).abs().max().item()
        for first, second in pairs
        for name in first
        if first[name].is_floating_point()
    )


def last_evaluation(run_dir: Path) -> dict:
    """The last metrics.jsonl line with the papers' protocol numbers."""
    lines = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    return [line for line in lines if "modes_covered" in line][-1]


def last_step_flags(steps: int) -> list[str]:
    """Train `steps` steps; evaluate and write the checkpoint at the last step only."""
    return [f"--{name}={steps}" for name in ("steps", "eval-every", "snapshot-every")]


def train_pair(
    preset: str, processes: int, flags: list[str], one: Path, many: Path
) -> tuple[list[dict], list[float]]:
    """Train `preset` with `flags` in one process (into `one`) and in `processes` (into
    `many`): both runs' last evaluations and wall seconds."""
    runs = ((1, one), (processes, many))
    seconds = [run_training(preset, count, run_dir, flags) for count, run_dir in runs]
    return [last_evaluation(one), last_evaluation(many)], seconds


def compare(preset: str, processes: int, steps: int, folder: Path) -> dict:
    """One table row: train `preset` in one and in `processes` processes, compare."""
    one, many = folder / f"{preset}-{steps}-1", folder / f"{preset}-{steps}-{processes}"
    evaluations, seconds = train_pair(preset, processes, last_step_flags(steps), one, many)
    difference, size = weight_difference(one, many)
    return {
        "preset": preset,
        "steps": steps,
        "difference": difference,
        "relative": difference / size,
        "one_ulp": nudged_difference(preset, steps),
        "evaluations": evaluations,
        "seconds": seconds,
    }


def format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_table(rows: list[dict], processes: int) -> None:
    header = ["preset", "steps", "max abs weight diff", "relative", "one ulp"]
    header += [f"{key} (1 / {processes})" for key in EVALUATION] + [f"s (1 / {processes})"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row["preset"], str(row["steps"]), f"{row['difference']:.2e}"]
        cells += [f"{row['relative']:.2e}", f"{row['one_ulp']:.2e}"]
        for key in EVALUATION:
            cells.append(" / ".join(format_value(run[key]) for run in row["evaluations"]))
        cells.append(" / ".join(f"{seconds:.1f}" for seconds in row["seconds"]))
        print("| " + " | ".join(cells) + " |")


def compare_seeds(
    preset: str, processes: int, seeds: int, steps: int | None, folder: Path
) -> list[dict]:
    """Train `preset` at seeds 0..seeds-1 in one and in `processes` processes (its own step
    count unless `steps`), into folder/<preset>-s<seed>-<processes>: one record per seed and
    process count (seed_records)."""
    steps = steps or preset_family(preset).resolve(preset, {}).steps
    for seed in range(seeds):
        one = folder / f"{preset}-s{seed}-1"
        many = folder / f"{preset}-s{seed}-{processes}"
        train_pair(preset, processes, last_step_flags(steps) + [f"--seed={seed}"], one, many)
    return seed_records(folder, preset, processes)


def seed_records(folder: Path, preset: str, processes: int) -> list[dict]:
    """The records of the finished seed pairs of `preset` in `folder` (both runs written): its
    steps, seed, process count, training seconds (the last metrics line's elapsed_s) and the
    last evaluation's numbers and verdict. A run cut short leaves its seed out."""
    records = []
    for seed in range(10_000):
        runs = {count: folder / f"{preset}-s{seed}-{count}" for count in (1, processes)}
        if not all((run / "checkpoint.pt").is_file() for run in runs.values()):
            break
        for count, run in runs.items():
            lines = (run / "metrics.jsonl").read_text().splitlines()
            evaluation = last_evaluation(run)
            records.append(
                {
                    "preset": preset,
                    "steps": evaluation["step"],
                    "seed": seed,
                    "processes": count,
                    "seconds": json.loads(lines[-1])["elapsed_s"],
                }
                | {key: evaluation.get(key) for key in EVALUATION}
                | {"verdict": evaluation.get("verdict")}
            )
    return records


def mean_sd(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def within_two_se(first: list[float], second: list[float]) -> str:
    """|mean difference| and two standard errors of it (Welch), as "d < 2se: yes"."""
    (m1, s1), (m2, s2) = mean_sd(first), mean_sd(second)
    bound = 2 * math.sqrt(s1**2 / len(first) + s2**2 / len(second))
    verdict = "yes" if abs(m1 - m2) <= bound else "**no**"
    return f"{abs(m1 - m2):.3g} vs {bound:.3g}: {verdict}"


def print_seed_table(records: list[dict], processes: int) -> None:
    """Per preset: each process count's mean ± sd over seeds, then the comparison row."""
    header = ["preset", "steps", "processes", "seeds"] + list(EVALUATION)
    header += ["verdicts", "s per run"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for preset in dict.fromkeys(record["preset"] for record in records):
        rows = {
            count: [r for r in records if r["preset"] == preset and r["processes"] == count]
            for count in (1, processes)
        }
        for count, runs in rows.items():
            cells = [preset, str(runs[0]["steps"]), str(count), str(len(runs))]
            for key in EVALUATION:
                values = [run[key] for run in runs if run[key] is not None]
                mean, sd = mean_sd(values) if values else (None, None)
                cells.append("-" if mean is None else f"{mean:.4g} ± {sd:.2g}")
            verdicts = [run["verdict"] or "-" for run in runs]
            cells.append(", ".join(f"{v} {verdicts.count(v)}" for v in dict.fromkeys(verdicts)))
            cells.append(f"{mean_sd([run['seconds'] for run in runs])[0]:.0f}")
            print("| " + " | ".join(cells) + " |")
        cells = [preset, "", f"1 vs {processes}", "mean diff vs 2 SE"]
        for key in EVALUATION:
            pairs = [[run[key] for run in rows[count] if run[key] is not None] for count in rows]
            cells.append(within_two_se(*pairs) if all(pairs) else "-")
        print("| " + " | ".join(cells + ["", ""]) + " |")
    print()
    print(
        "| preset | seed | "
        + " | ".join(f"{key} (1 / {processes})" for key in EVALUATION)
        + f" | verdict (1 / {processes}) |"
    )
    print("|" + "---|" * (3 + len(EVALUATION)))
    for record in records[::2]:
        other = next(
            r
            for r in records
            if r["preset"] == record["preset"]
            and r["seed"] == record["seed"]
            and r["processes"] == processes
        )
        cells = [record["preset"], str(record["seed"])]
        cells += [" / ".join(format_value(r[key]) for r in (record, other)) for key in EVALUATION]
        cells.append(f"{record['verdict']} / {other['verdict']}")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["ring8-gan"])
    parser.add_argument("--steps", nargs="+", type=int, help="default: 10 100 1000")
    parser.add_argument("--processes", type=int, default=2, help="torchrun's --nproc_per_node")
    parser.add_argument(
        "--seeds", type=int, help="compare the table's numbers over seeds 0..N-1 (see above)"
    )
    parser.add_argument(
        "--tabulate",
        type=Path,
        help="print the --seeds table of the finished seed pairs in this folder (an earlier "
        "run's, also one cut short), training nothing",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        help="with --seeds: train into this folder (default: a new temporary one); seed pairs "
        "already finished there are resumed at their last step, so not trained again",
    )
    args = parser.parse_args()
    if args.tabulate:
        records = [r for p in args.presets for r in seed_records(args.tabulate, p, args.processes)]
        print_seed_table(records, args.processes)
        return
    torch.set_num_threads(1)  # as the trainer processes run
    folder = args.folder or Path(tempfile.mkdtemp(prefix="distributed-parity-"))
    print(f"runs in {folder}", flush=True)
    if args.seeds:
        if args.steps and len(args.steps) > 1:
            parser.error("--seeds takes at most one --steps count")
        steps = args.steps[0] if args.steps else None
        records = [
            record
            for preset in args.presets
            for record in compare_seeds(preset, args.processes, args.seeds, steps, folder)
        ]
        (folder / "records.json").write_text(json.dumps(records, indent=1))
        print_seed_table(records, args.processes)
        return
    args.steps = args.steps or [10, 100, 1000]
    rows = [
        compare(preset, args.processes, steps, folder)
        for preset in args.presets
        for steps in args.steps
    ]
    print_table(rows, args.processes)


if __name__ == "__main__":
    main()
