"""Discovered modes vs the centre protocol on the same batches (docs/results/cluster-modes.md).

For ring8 and grid25, each trial draws a batch of 2,500 exact mixture samples, either from
every mode ("full") or with 1, 2 or 3 random modes removed, and counts its modes twice:
- centres: the papers' protocol on the true mixture (mixture.py: within 3 std of a centre);
- clusters: an uploaded reference of 5,000 real mixture points, no centres given, its modes
  discovered by clusters.py (one of `--references` references per dataset, in turn); each
  discovered mode is mapped to the true mode whose centre is nearest, for the comparison only.
"named" is the share of trials whose missing modes are exactly the removed ones; "mode rules
healthy/flagged" applies the verdict to the mode statistics alone (coverage and KL rules);
"full verdict" runs diagnose() on the first `--full-trials` trials (k-NN and NDB rules too).
blobs10-64d: 10 Gaussian clusters in 64-D (no 3-std protocol there: chi2_64 puts no mass
within 3 std), one cluster removed, or a random half of the reference rows ("half").

    python -m bench.cluster_modes --trials 100 --full-trials 20
"""

import argparse
import time

import numpy as np

from lab.diagnostics import GaussianMixture, diagnose
from lab.diagnostics.clusters import ClusterModes, cluster_mode_stats, discover_modes
from lab.diagnostics.report import mixture_mode_stats
from lab.diagnostics.statistics import FeatureStats
from lab.diagnostics.verdict import verdict

RING8 = [[np.cos(2 * np.pi * i / 8), np.sin(2 * np.pi * i / 8)] for i in range(8)]
GRID25 = [[x, y] for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)]
BATCH, REFERENCE_ROWS = 2_500, 5_000
RAW = {"type": "features", "embedding": "raw", "sample_shape": [2]}
NO_FEATURES = FeatureStats(BATCH, 0, None, None, None, None, None, None, None, 0.0, 0.0)


def mixture(centres: list, std: float) -> dict:
    k = len(centres)
    return {"type": "gaussian_mixture", "dim": len(centres[0]), "centres": centres,
            "std": std, "weights": [1.0] * k}  # fmt: skip


def draw(spec: dict, n: int, modes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n exact draws float64 [n, d] from the listed modes of the mixture spec."""
    centres = np.asarray(spec["centres"])
    chosen = rng.choice(modes, size=n)
    return centres[chosen] + spec["std"] * rng.standard_normal((n, centres.shape[1]))


def fit_references(spec: dict, count: int) -> list[tuple[np.ndarray, ClusterModes, np.ndarray]]:
    """(points, discovered modes, true mode of each discovered mode) for `count` uploads."""
    everything = np.arange(len(spec["centres"]))
    fitted = []
    for index in range(count):
        points = draw(spec, REFERENCE_ROWS, everything, np.random.default_rng(1000 + index))
        modes = discover_modes(points)[0]
        centres = np.asarray(spec["centres"])
        truth = np.argmin(((modes.centres[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        fitted.append((points, modes, truth))
    return fitted


def trial_row(stats, removed: set, truth: np.ndarray | None) -> tuple[bool, str]:
    """(missing modes are exactly the removed ones, mode-rules verdict status)."""
    missing = stats.missing if truth is None else truth[stats.missing].tolist()
    exact = len(missing) == len(set(missing)) and set(missing) == removed
    return exact, verdict(stats, NO_FEATURES).status


def run_condition(name, spec, references, n_removed, args, rng) -> list[str]:
    """Table rows (centres, clusters) for one dataset and number of removed modes."""
    mix = GaussianMixture.from_spec(spec)
    k = len(spec["centres"])
    counts = {"centres": [0, 0, []], "clusters": [0, 0, []]}  # named, mode-rules healthy, full
    for trial in range(args.trials):
        removed = set(rng.choice(k, n_removed, replace=False).tolist())
        batch = draw(spec, BATCH, np.array([m for m in range(k) if m not in removed]), rng)
        points, modes, truth = references[trial % len(references)]
        for protocol, stats, mapping in (
            ("centres", mixture_mode_stats(batch, mix), None),
            ("clusters", cluster_mode_stats(batch, modes), truth),
        ):
            exact, status = trial_row(stats, removed, mapping)
            counts[protocol][0] += exact
            counts[protocol][1] += status == "healthy"
            if trial < args.full_trials:
                report = (
                    diagnose(batch, spec, name)
                    if protocol == "centres"
                    else diagnose(batch, RAW, name, points, clusters=modes)
                )
                counts[protocol][2].append(report["verdict"]["status"] == "healthy")
    return [format_row(name, n_removed, p, c, args.trials) for p, c in counts.items()]


def format_row(name: str, n_removed: int, protocol: str, counts: list, trials: int) -> str:
    named, healthy, full = counts
    condition = "full" if n_removed == 0 else f"{n_removed} removed"
    wanted = "healthy" if n_removed == 0 else "flagged"
    rule_rate = healthy if n_removed == 0 else trials - healthy
    full_rate = sum(full) if n_removed == 0 else len(full) - sum(full)
    return (
        f"| {name} | {condition} | {protocol} | {named}/{trials} | "
        f"{wanted} {rule_rate}/{trials} | {wanted} {full_rate}/{len(full)} |"
    )


def blobs_rows(args) -> list[str]:
    """blobs10-64d: one reference; one cluster removed, or a random half of the reference."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(10, 64)) * 0.6
    spec = mixture(centres.tolist(), 1 / 8)
    points = draw(spec, REFERENCE_ROWS, np.arange(10), np.random.default_rng(8))
    modes = discover_modes(points)[0]
    truth = np.argmin(((modes.centres[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    raw = {"type": "features", "embedding": "raw", "sample_shape": [64]}
    rows = [f"| blobs10-64d | (K found: {modes.n_modes}) | | | | |"]
    for n_removed in (0, 1):
        named, healthy, full = 0, 0, []
        for trial in range(args.trials):
            removed = set() if n_removed == 0 else {int(rng.integers(10))}
            if n_removed == 0:  # a random half of the real rows
                batch = points[rng.choice(REFERENCE_ROWS, REFERENCE_ROWS // 2, replace=False)]
            else:
                batch = draw(spec, BATCH, np.array([m for m in range(10) if m not in removed]), rng)
            exact, status = trial_row(cluster_mode_stats(batch, modes), removed, truth)
            named, healthy = named + exact, healthy + (status == "healthy")
            if trial < args.full_trials:
                report = diagnose(batch, raw, "blobs", points, clusters=modes)
                full.append(report["verdict"]["status"] == "healthy")
        row = format_row("blobs10-64d", n_removed, "clusters", [named, healthy, full], args.trials)
        rows.append(row.replace("| full |", "| half of the reference |"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--full-trials", type=int, default=20)
    parser.add_argument("--references", type=int, default=10)
    args = parser.parse_args()
    if min(args.trials, args.references) < 1 or not 0 <= args.full_trials <= args.trials:
        parser.error("need trials >= 1, references >= 1 and 0 <= full-trials <= trials")
    started = time.perf_counter()
    print("| dataset | batch | protocol | missing named exactly | mode rules | full verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, spec in (("ring8", mixture(RING8, 0.01)), ("grid25", mixture(GRID25, 0.05))):
        references = fit_references(spec, args.references)
        ks = sorted({modes.n_modes for _, modes, _ in references})
        print(f"| {name} | (K found on the {len(references)} uploads: {ks}) | | | | |")
        rng = np.random.default_rng(0)
        for n_removed in range(4):
            print("\n".join(run_condition(name, spec, references, n_removed, args, rng)))
    print("\n".join(blobs_rows(args)))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
