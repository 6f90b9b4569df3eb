"""Benchmark: the full diagnostics report against its k-NN part, and against a baseline revision.

    python -m bench.report                              # 50k x 50k d=64, vs main, once
    python -m bench.report --repeats 3                  # each measurement 3 times: min-max
    python -m bench.report --baseline HEAD~2 --size 10000
    python -m bench.report --no-baseline                # this tree only

The row "the same reference again" times a second report in the interpreter of a first, as a
serving worker makes its next report against the same reference: the reference's own k-NN
sweep and K-means are kept (lab/diagnostics/reference_passes.py), the values must be equal.

Each measurement runs in a fresh interpreter that draws the same seeded float64 features as
bench.diagnostics (real N(0, I), fake 1.1 N(0, I) + 0.1); imports are not timed. The report
is diagnose() end to end against a features reference (raw embedding, the real rows as its
reference features: manifold metrics, NDB, Vendi, duplicates); the k-NN part is
manifold_metrics alone. The baseline's lab/ is extracted with `git archive` into a temporary
directory and imported from there, so both run in the same session on the same machine. Its
report and this tree's are compared value by value. Then this tree's report is timed part by
part, in the order diagnose runs them. Prints markdown tables.
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIM = 64
REFERENCE = {"type": "features", "embedding": "raw", "sample_shape": [DIM]}


def time_report(real, fake) -> tuple[float, dict]:
    """(seconds, report) of diagnose() of fake against real as reference features."""
    from lab.diagnostics import diagnose

    start = time.perf_counter()
    report = diagnose(fake, REFERENCE, "bench", reference_features=real)
    return time.perf_counter() - start, report


def time_again(real, fake) -> tuple[float, dict]:
    """(seconds, report) of a second diagnose() against the same reference rows in one
    interpreter: the reference's k-NN sweep and K-means kept from the first
    (lab.diagnostics.reference_passes), as a serving worker diagnoses its next batch. The
    report must equal the first one's."""
    from lab.diagnostics.reference_passes import REFERENCE_PASSES

    first = time_report(real, fake)[1]
    seconds, report = time_report(real, fake)
    if report != first or REFERENCE_PASSES.hits != 2:
        raise SystemExit(f"the second report differs or kept nothing ({REFERENCE_PASSES.hits})")
    return seconds, report


def time_knn(real, fake) -> tuple[float, dict]:
    """(seconds, values) of manifold_metrics alone: the report's k-NN part."""
    from lab.diagnostics.manifold import manifold_metrics

    start = time.perf_counter()
    values = manifold_metrics(real, fake)
    return time.perf_counter() - start, values


def time_parts(real, fake) -> tuple[float, dict]:
    """(total seconds, seconds per part) of this tree's feature section, part by part."""
    import numpy as np

    from lab.diagnostics import duplicates, features, kmeans, manifold, ndb, neighbours, vendi

    k_pr, k_dc = manifold.PRECISION_RECALL_K, manifold.DENSITY_COVERAGE_K
    parts, clock = {}, [time.perf_counter()]

    def done(name: str) -> None:
        clock.append(time.perf_counter())
        parts[name] = clock[-1] - clock[-2]

    real_smallest = neighbours.nearest_neighbour_squared_distances(real, max(k_pr, k_dc))
    threshold = duplicates.threshold_from_neighbours(real_smallest)
    done("reference k-NN sweep (radii, near-duplicate threshold)")
    fake_smallest, near = neighbours.neighbour_sweep(fake, k_pr, threshold * threshold)
    done("batch k-NN sweep with the near-duplicate pairs")
    manifold.manifold_from_neighbours(real, fake, (real_smallest, fake_smallest))
    done("reference x batch sweep (precision, recall, density, coverage)")
    duplicates.duplicates_from_pairs(fake, threshold, near.pairs, near.has_partner)
    done("exact duplicates (np.unique)")
    fit = kmeans.kmeans_fit(real, ndb.default_bins(real.shape[0]))
    done("K-means of the reference (NDB bins and the reference's assignment)")
    np.bincount(ndb.nearest_centres(fake, fit.centres)[0])
    done("NDB assignment of the batch")
    vendi.vendi_score(fake), vendi.vendi_score(real, max_samples=features.VENDI_MAX_SAMPLES)
    done("Vendi scores")
    return clock[-1] - clock[0], parts


def worker(which: str, size: int) -> None:
    """Subprocess body: draw the features, run one measurement, print one JSON line."""
    from bench.diagnostics import draw

    real, fake = draw(size, size, DIM)
    import lab.diagnostics.report  # noqa: F401  (imported before timing)

    timed = {"report": time_report, "again": time_again, "knn": time_knn, "parts": time_parts}
    timed = timed[which]
    seconds, values = timed(real, fake)
    print(json.dumps({"seconds": seconds, "values": values}))


def measure(which: str, size: int, code: Path) -> dict:
    """worker(which, size) in a fresh interpreter importing lab/ from `code` (its working
    directory, first on sys.path; bench/ comes from this tree)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench.report", "--worker", which, str(size)]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, env=environment, cwd=code
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def extract_lab(revision: str, directory: Path) -> Path:
    """lab/ of a git revision, extracted under directory (the import root for measure)."""
    archive = directory / "lab.tar"
    subprocess.run(
        ["git", "archive", "--output", str(archive), revision, "lab"], check=True, cwd=ROOT
    )
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    return directory


def differences(expected, actual, path: str = "") -> list[str]:
    """Where two JSON values differ: 'path: expected -> actual' for each leaf."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = list(dict.fromkeys([*expected, *actual]))
        return [
            line
            for key in keys
            for line in differences(expected.get(key), actual.get(key), f"{path}.{key}")
        ]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            line
            for index, pair in enumerate(zip(expected, actual, strict=True))
            for line in differences(*pair, f"{path}[{index}]")
        ]
    return [] if expected == actual else [f"{path}: {expected!r} -> {actual!r}"]


def seconds_range(runs: list[dict], digits: int = 1) -> str:
    """'12.3' for one run, '12.3-14.1' (min-max) for several."""
    times = sorted(run["seconds"] for run in runs)
    low, high = f"{times[0]:.{digits}f}", f"{times[-1]:.{digits}f}"
    return low if len(times) == 1 else f"{low}-{high}"


def code_row(label: str, knn: list[dict], report: list[dict]) -> str:
    """One row of the main table: k-NN part, full report, their ratio (of the medians)."""
    middle = len(knn) // 2
    ratio = sorted(r["seconds"] for r in report)[middle] / sorted(k["seconds"] for k in knn)[middle]
    return f"| {label} | {seconds_range(knn)} | {seconds_range(report)} | {ratio:.2f} |"


def parts_table(runs: list[dict]) -> list[str]:
    """The parts of this tree's feature section: min-max seconds of each over the runs."""
    lines = ["| part (this tree) | seconds |", "|---|---|"]
    for name in runs[0]["values"]:
        lines.append(
            f"| {name} | {seconds_range([{'seconds': r['values'][name]} for r in runs])} |"
        )
    lines.append(f"| sum of the parts | {seconds_range(runs)} |")
    return lines


def main() -> None:
    """Parse flags, run the measurements (interleaved, baseline first), print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000, help="N = M (default 50,000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each measurement")
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--no-baseline", action="store_true", help="this tree only")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    if args.size < 2_000 or args.repeats < 1:
        parser.error("--size must be >= 2000 (NDB's 100 bins) and --repeats >= 1")
    with tempfile.TemporaryDirectory() as directory:
        codes = {"this tree": ROOT}
        if not args.no_baseline:
            codes = {f"baseline {args.baseline}": extract_lab(args.baseline, Path(directory))}
            codes["this tree"] = ROOT
        runs = {(label, which): [] for label in codes for which in ("knn", "report")}
        runs["parts"], runs["again"] = [], []
        for _ in range(args.repeats):
            for label, code in codes.items():
                for which in ("knn", "report"):
                    runs[label, which].append(measure(which, args.size, code))
            runs["again"].append(measure("again", args.size, ROOT))
            runs["parts"].append(measure("parts", args.size, ROOT))
    print(f"N = M = {args.size}, d = {DIM}, {args.repeats} run(s) each, min-max seconds\n")
    print("| code | k-NN metrics s | full report s | report / k-NN |")
    print("|---|---|---|---|")
    for label in codes:
        print(code_row(label, runs[label, "knn"], runs[label, "report"]))
    label = "this tree, the same reference again (its passes kept)"
    print(code_row(label, runs["this tree", "knn"], runs["again"]))
    same = runs["again"][0]["values"] == runs["this tree", "report"][0]["values"]
    print(f"\nthe second report vs the first: {'identical' if same else 'DIFFERENT'}")
    if not args.no_baseline:
        baseline, ours = (runs[label, "report"][0]["values"] for label in codes)
        changed = differences(baseline, ours)
        print(f"\nreport values vs the baseline: {'identical' if not changed else changed}")
    print()
    print("\n".join(parts_table(runs["parts"])))


if __name__ == "__main__":
    main()
