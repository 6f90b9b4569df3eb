"""Benchmark: k-NN manifold metrics, ours (lab.diagnostics.manifold) vs prdc.compute_prdc.

    python -m bench.diagnostics            # 10k x 10k d=64 (both) and 50k x 50k d=64 (ours)
    python -m bench.diagnostics --quick    # 2k x 2k d=64 (both)
    python -m bench.diagnostics --large    # adds 50k x 50k d=2048 (ours)
    python -m bench.diagnostics --large --no-prdc   # ours only (where prdc is not installed)

Each measurement runs in a fresh subprocess that draws the same seeded float64 features, so
the peak RSS (ru_maxrss, features included) is that computation's alone; imports are not
timed. prdc has one k, so precision/recall (k=3) and density/coverage (k=5) take two
compute_prdc calls; the "k=5" rows compare one call with ours at k_pr = k_dc = 5. prdc
compares with `<`, so ours runs with inclusive=False here. Prints a markdown table.
"""

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import time

import numpy as np

KEYS = ("precision", "recall", "density", "coverage")


def draw(n_real: int, n_fake: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float64 features: real N(0, I), fake 1.1 N(0, I) + 0.1."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    return real, 1.1 * rng.standard_normal((n_fake, dim)) + 0.1


def run_ours(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """Our four metrics with prdc's strict `<`."""
    from lab.diagnostics.manifold import manifold_metrics  # imported before timing

    return manifold_metrics(real, fake, k_pr=k_pr, k_dc=k_dc, inclusive=False)


def run_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """prdc at k_pr (precision, recall) and k_dc (density, coverage); one call if equal."""
    import prdc  # imported before timing

    with contextlib.redirect_stdout(io.StringIO()):
        at_pr = prdc.compute_prdc(real, fake, k_pr)
        at_dc = at_pr if k_dc == k_pr else prdc.compute_prdc(real, fake, k_dc)
    return {key: float((at_pr if key in KEYS[:2] else at_dc)[key]) for key in KEYS}


def worker(which: str, n_real: int, n_fake: int, dim: int, k_pr: int, k_dc: int) -> None:
    """Subprocess body: time one implementation and print JSON (seconds, values, peak RSS)."""
    real, fake = draw(n_real, n_fake, dim)
    if which == "ours":  # imports (prdc's pulls in scikit-learn, ~0.8 s) are not timed
        import lab.diagnostics.manifold  # noqa: F401
    else:
        import prdc  # noqa: F401
    start = time.perf_counter()
    values = (run_ours if which == "ours" else run_prdc)(real, fake, k_pr, k_dc)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "peak_bytes": peak, **{k: values[k] for k in KEYS}}))


def measure(which: str, case: tuple[int, int, int, int, int]) -> dict[str, float]:
    """Run worker(which, *case) in a fresh interpreter and parse its JSON line."""
    command = [sys.executable, "-m", "bench.diagnostics", "--worker", which, *map(str, case)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def row(case: tuple[int, int, int, int, int], with_prdc: bool) -> str:
    """One markdown table row for a case (N, M, d, k_pr, k_dc)."""
    n_real, n_fake, dim, k_pr, k_dc = case
    ours = measure("ours", case)
    label = f"k={k_pr}/{k_dc}" if k_pr != k_dc else f"k={k_pr}"
    if not with_prdc:
        cells = ["-", f"{ours['seconds']:.2f}", "-", "-"]
    else:
        theirs = measure("prdc", case)
        difference = max(abs(ours[key] - theirs[key]) for key in KEYS)
        speedup = theirs["seconds"] / ours["seconds"]
        cells = [
            f"{theirs['seconds']:.2f}",
            f"{ours['seconds']:.2f}",
            f"{speedup:.1f}x",
            f"{difference:.1e}",
        ]
    peak = f"{ours['peak_bytes'] / 2**30:.2f} GiB"
    return f"| {label} | {n_real} | {n_fake} | {dim} | " + " | ".join(cells) + f" | {peak} |"


def main() -> None:
    """Parse flags, run the cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--large", action="store_true", help="add 50k x 50k at d=2048")
    parser.add_argument("--no-prdc", action="store_true", help="ours only, no comparison")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        which, *numbers = args.worker
        worker(which, *map(int, numbers))
        return
    if args.quick:
        cases = [((2000, 2000, 64, 3, 5), True), ((2000, 2000, 64, 5, 5), True)]
    else:
        cases = [
            ((10000, 10000, 64, 3, 5), True),
            ((10000, 10000, 64, 5, 5), True),
            ((50000, 50000, 64, 3, 5), False),
        ]
    if args.large:
        cases.append(((50000, 50000, 2048, 3, 5), False))
    print("| case | N | M | d | prdc s | ours s | speedup | max abs diff | ours peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, with_prdc in cases:
        print(row(case, with_prdc and not args.no_prdc), flush=True)


if __name__ == "__main__":
    main()
