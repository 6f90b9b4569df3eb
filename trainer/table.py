"""`python -m trainer table`: the collapse benchmarks x methods x seeds, on the papers' protocol.

Each (benchmark, method) is a preset, `trainer/presets/<benchmark>-<method>.json`; each seed is
one training run in `<runs_dir>/<benchmark>/<method>/seed<k>/` (the ordinary run directory plus
`result.json`, the final evaluation). A run whose result.json holds the same resolved config is
reused, so the command can be re-run to add seeds or methods, or to resume after an interruption
(the training loop resumes from the run's checkpoint).

The evaluation is the papers': 2,500 samples on the 2-D mixtures (PacGAN; VEEGAN), 26,000 on
stacked digits (260,000 on the 10,000 modes of stacked-digits4: 26 a mode again), from the
final generator on the service's seed-0 latents (so a bundled model exported from a seed-0 run
reproduces its row through the service). The table reports mean +-
standard error over seeds of modes captured, % high-quality samples and KL(generated mode
histogram || reference); the figure shows each method's seed-0 samples. The same samples also
get the service's full report, so every run records its verdict with the feature rules and its
coverage against that of identical distributions (collapse inside a mode, which the mode counts
cannot see); a finished run evaluated before that was recorded is evaluated again from its
checkpoint, without training.

Outputs, in `out_dir`: `collapse.md` (the table next to the papers' numbers), `collapse.json`
(every run's numbers and config) and `collapse.png` (the figure).
"""

import functools
import json
import math
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from lab.samplers import network_evaluations
from trainer.config import TrainConfig
from trainer.datasets import GaussianMixture, get_dataset
from trainer.devices import Placement, resolve_amp, resolve_device
from trainer.distributed import init_placement
from trainer.edm.config import ScoreConfig
from trainer.families import FAMILIES, preset_family
from trainer.grid import Setting, setting_name
from trainer.runs import check_run_dir, train
from trainer.settings import preset_names
from trainer.vae.config import VAEConfig

BENCHMARKS = ("ring8", "grid25", "stacked-digits")  # the collapse table's, by default
# Where methods still fail: many modes (grid100; stacked-digits4, 10,000 modes on 260,000
# samples), rare ones (grid25-rare, 10,000 samples), high dimension (veegan1200: 10 modes
# in 1200-D) and Stacked MNIST at the papers' 28x28 (stacked-mnist, 26,000 samples).
HARDER_BENCHMARKS = ("grid100", "grid25-rare", "stacked-digits4", "veegan1200", "stacked-mnist")
METHODS = (
    "gan",
    "unrolled",
    "pacgan2",
    "pacgan4",
    "wgan-gp",
    "wgan-gp-ema",
    "r1-ema",
    "mbstd",
    "pacgan4-mbstd",
    "diffaugment",
    "edm",
    "vae",
    "cgan",
    "edm-conditional",
)
# PacGAN's Table 1 in the authors' 2-D setup: their nets ("pacgan-mlp"), Adam lr 1e-4, beta1
# 0.8, packing by independent batches (pack_mode "batches"), 400k steps: hours a run on a CPU,
# so a table takes them only when --methods names them (the default is METHODS).
PACGAN_PAPER_METHODS = (
    "pacgan-paper-gan",
    "pacgan-paper-pacgan2",
    "pacgan-paper-pacgan3",
    "pacgan-paper-pacgan4",
)
# The matched-budget ablation on ring8 and grid25: each mitigation alone on the plain GAN's base
# (5k steps, lr 1e-3 decayed linearly), each loss, G-EMA alone and with WGAN-GP at the same
# steps. Beside "gan", "unrolled", "pacgan2", "pacgan4", "mbstd" and "wgan-gp" of METHODS (the
# same base), they make one row per fix at one budget; a table takes them when --methods does.
# "cgan-mmd" is the class-conditional GAN ("cgan", the same base with a class per mode) with
# "mmd": the fix for its collapse inside the classes (docs/results/conditional.md).
ABLATION_METHODS = (
    "hinge",
    "mbd",
    "feature-matching",
    "ttur",
    "spectral-norm",
    "instance-noise",
    "r1",
    "g-ema",
    "wgan-gp-g-ema",
    "mbd-ttur",
    "mbstd-g-ema",
    "noise-injection",
    "mbstd-noise",
    "wgan-gp-noise",
    "fourier",
    "fourier-noise",
    "wgan-gp-fourier-noise",
    "nn-noise",
    "wgan-gp-nn",
    "wgan-gp-nn-noise",
    "mmd",
    "wgan-gp-mmd",
    "mbstd-mmd",
    "mmd-g-ema",
    "mmd-noise",
    "cgan-mmd",
)
METHOD_LABELS = {
    "gan": "GAN (non-saturating, no fix)",
    "unrolled": "Unrolled GAN (K = 5)",
    "pacgan2": "PacGAN2",
    "pacgan4": "PacGAN4",
    "wgan-gp": "WGAN-GP",
    "wgan-gp-ema": "WGAN-GP + G weight EMA, longer runs",
    "r1-ema": "R1 penalty + G weight EMA, longer runs",
    "mbstd": "Minibatch stddev",
    "pacgan4-mbstd": "PacGAN4 + minibatch stddev",
    "diffaugment": "DiffAugment (translation, cutout)",
    "edm": "Score model (EDM, Heun, 18 steps = 35 evaluations)",
    "vae": "VAE (the decoder's mean)",
    "cgan": "Class-conditional GAN (projection D)",
    "edm-conditional": "Class-conditional score model (EDM, class embedding)",
    "hinge": "Hinge loss",
    "mbd": "Minibatch discrimination (5 kernels x 3)",
    "feature-matching": "Feature matching (G matches D's features)",
    "ttur": "TTUR (lr_g 2.5e-4, lr_d 1e-3)",
    "spectral-norm": "Spectral norm on D",
    "instance-noise": "Instance noise (std 0.1, annealed to 0)",
    "r1": "R1 penalty (gamma 10)",
    "g-ema": "G weight EMA (0.99)",
    "wgan-gp-g-ema": "WGAN-GP + G weight EMA (0.99), the base's steps",
    "mbd-ttur": "Minibatch discrimination + TTUR",
    "mbstd-g-ema": "Minibatch stddev + G weight EMA (0.99)",
    "noise-injection": "Noise injection at G's output (learned scale)",
    "mbstd-noise": "Minibatch stddev + noise injection",
    "wgan-gp-noise": "WGAN-GP + noise injection",
    "fourier": "Fourier features in D",
    "fourier-noise": "Fourier features in D + noise injection in G",
    "wgan-gp-fourier-noise": "WGAN-GP + Fourier features + noise injection",
    "nn-noise": "Nearest-neighbour distance in D + noise injection in G",
    "wgan-gp-nn": "WGAN-GP + nearest-neighbour distance in D",
    "wgan-gp-nn-noise": "WGAN-GP + nearest-neighbour distance + noise injection",
    "mmd": "MMD^2 added to G's loss (Gaussian kernels, 0.005-5.12)",
    "wgan-gp-mmd": "WGAN-GP + MMD^2 in G's loss",
    "mbstd-mmd": "Minibatch stddev + MMD^2 in G's loss",
    "mmd-g-ema": "MMD^2 in G's loss + G weight EMA (0.999)",
    "mmd-noise": "MMD^2 in G's loss + noise injection",
    "cgan-mmd": "Class-conditional GAN + MMD^2 in G's loss",
    "pacgan-paper-gan": "GAN, PacGAN's 2-D setup (BN G, maxout D)",
    "pacgan-paper-pacgan2": "PacGAN2, PacGAN's 2-D setup (2 independent batches)",
    "pacgan-paper-pacgan3": "PacGAN3, PacGAN's 2-D setup (3 independent batches)",
    "pacgan-paper-pacgan4": "PacGAN4, PacGAN's 2-D setup (4 independent batches)",
}
# Labels that name the run's own sampler and steps (a score model's config: sampler, sample_steps)
SAMPLER_LABELS = {"edm": "Score model (EDM, {sampler}, {steps} steps = {evaluations} evaluations)"}
QUICK_FIELDS = {"steps": 20, "eval_every": 0, "snapshot_every": 0}
QUICK = {
    "benchmarks": ("ring8", "stacked-digits"),
    "methods": ("gan", "pacgan2"),
    "seeds": 2,
    "overrides": {
        "ring8": {**QUICK_FIELDS, "eval_samples": 500},
        "stacked-digits": {**QUICK_FIELDS, "eval_samples": 1000},
    },
}
RESULT_FILE = "result.json"
# The 2-D mixtures' goal, seed by seed: the full verdict healthy, every mode, high quality
# within 2 points of an exact sampler's share (98.89% in 2-D), KL within 0.005 of an exact
# sampler's with as many high-quality samples, coverage >= 0.9 x identical distributions'.
GOAL_HIGH_QUALITY_MARGIN = 0.02
GOAL_KL_MARGIN = 0.005
GOAL_COVERAGE_RATIO = 0.9
METRICS = (
    "modes_covered",
    "high_quality_fraction",
    "kl",
    "modes_covered_all",
    "kl_all",
    "active_dims",
    "classes_healthy",
    "coverage",
    "coverage_identical",
)
# modes_covered_all and kl_all: every sample counted by its argmax mode (classifier references
# only; the Stacked-MNIST papers' count); runs from before they were recorded lack them.
# active_dims: a VAE's active latent dimensions (trainer.vae.training_loop.latent_health).
# classes_healthy: a conditional model's classes whose own verdict is healthy (the report's
# classes section, lab/diagnostics/classes.py).
# coverage, coverage_identical: the full report's k-NN coverage and what identical
# distributions score (trainer.evaluation.feature_numbers); runs evaluated before it lack them.

# The papers' numbers, as printed in their tables (their setups and budgets, not ours).
PACGAN = "PacGAN (Lin et al. 2018)"
VEEGAN = "VEEGAN (Srivastava et al. 2017)"
PAPERS: dict[str, list[tuple[str, str, str, str, str]]] = {
    # (method, source, modes, high quality %, KL); "" where the paper gives no number.
    "ring8": [
        ("GAN", f"{VEEGAN}, Table 1", "1", "99.3", ""),
        ("Unrolled GAN", f"{VEEGAN}, Table 1", "7.6", "35.6", ""),
        ("VEEGAN", f"{VEEGAN}, Table 1", "8", "52.9", ""),
        ("GAN", f"{PACGAN}, Table 1", "6.3 ± 0.5", "98.2 ± 0.2", "0.45 ± 0.09"),
        ("PacGAN2", f"{PACGAN}, Table 1", "7.9 ± 0.1", "95.6 ± 2.0", "0.07 ± 0.03"),
        ("PacGAN3", f"{PACGAN}, Table 1", "7.8 ± 0.1", "97.7 ± 0.3", "0.10 ± 0.02"),
        ("PacGAN4", f"{PACGAN}, Table 1", "7.8 ± 0.1", "95.9 ± 1.4", "0.07 ± 0.02"),
    ],
    "grid25": [
        ("GAN", f"{VEEGAN}, Table 1", "3.3", "0.5", ""),
        ("Unrolled GAN", f"{VEEGAN}, Table 1", "23.6", "16", ""),
        ("VEEGAN", f"{VEEGAN}, Table 1", "24.6", "40", ""),
        ("GAN", f"{PACGAN}, Table 1", "17.3 ± 0.8", "94.8 ± 0.7", "0.70 ± 0.07"),
        ("PacGAN2", f"{PACGAN}, Table 1", "23.8 ± 0.7", "91.3 ± 0.8", "0.13 ± 0.04"),
        ("PacGAN3", f"{PACGAN}, Table 1", "24.6 ± 0.4", "94.2 ± 0.4", "0.06 ± 0.02"),
        ("PacGAN4", f"{PACGAN}, Table 1", "24.8 ± 0.2", "93.6 ± 0.6", "0.04 ± 0.01"),
    ],
    "veegan1200": [  # their 10-std rule: the "papers' 10 std" columns, not our radius
        ("GAN", f"{VEEGAN}, Table 1", "1.6", "2.0", ""),
        ("ALI", f"{VEEGAN}, Table 1", "3", "5.4", ""),
        ("Unrolled GAN", f"{VEEGAN}, Table 1", "0", "0.0", ""),
        ("VEEGAN", f"{VEEGAN}, Table 1", "5.5", "28.29", ""),
    ],
    "stacked-digits": [  # Stacked MNIST at 28x28, 26,000 samples
        ("DCGAN", f"{VEEGAN}, Table 2", "99", "", "3.4"),
        ("Unrolled GAN", f"{VEEGAN}, Table 2", "48.7", "", "4.32"),
        ("VEEGAN", f"{VEEGAN}, Table 2", "150", "", "2.95"),
        ("PacDCGAN2", f"{PACGAN}, Table 2", "1000.0 ± 0.0", "", "0.06 ± 0.003"),
        ("PacDCGAN4", f"{PACGAN}, Table 2", "1000.0 ± 0.0", "", "0.07 ± 0.005"),
    ],
}
PAPERS["stacked-mnist"] = PAPERS["stacked-digits"]  # the same papers' rows, at their own size


@dataclass(frozen=True)
class Run:
    """One table cell's seed: the resolved config and where it trains; `setting`: the --grid
    point it trains (trainer.grid), () outside a sweep."""

    benchmark: str
    method: str
    seed: int
    config: "TrainConfig | ScoreConfig | VAEConfig"
    run_dir: Path
    setting: Setting = ()

    @property
    def row(self) -> str:
        """The method and its setting, as the table's rows and the figure's panels name it."""
        return row_name(self.method, setting_name(self.setting))

    @property
    def is_gan(self) -> bool:
        """True for a GAN run (trainer.training_loop)."""
        return isinstance(self.config, TrainConfig)


def row_name(method: str, setting: str) -> str:
    """ "gan" or, in a sweep, "gan lr_d=0.0001"."""
    return f"{method} {setting}" if setting else method


def has_preset(benchmark: str, method: str) -> bool:
    """True when trainer/presets/<benchmark>-<method>.json exists."""
    return f"{benchmark}-{method}" in preset_names()


def plan(
    benchmarks: Iterable[str],
    methods: Iterable[str],
    seeds: int,
    runs_dir: Path,
    overrides: dict[str, dict[str, Any]] | None = None,
    settings: list[Setting] | None = None,
) -> list[Run]:
    """Every (benchmark, method, setting, seed) run with a preset, seeds 0..seeds-1, configs
    resolved.

    overrides: config fields per benchmark name; settings: the --grid points (trainer.grid),
    each overriding every preset after them (default: one run per seed, no sweep). Cells
    without a preset are left out (DiffAugment is for images only); a method without a preset
    on any of the benchmarks, or a swept field its family lacks, is a ValueError.
    """
    benchmarks, methods = list(benchmarks), list(methods)
    for method in methods:
        if not any(has_preset(benchmark, method) for benchmark in benchmarks):
            names = ", ".join(f"{b}-{method}" for b in benchmarks)
            raise ValueError(f"no preset {names} (trainer/presets/) for method {method!r}")
    runs = []
    for benchmark in benchmarks:
        for method in methods:
            if not has_preset(benchmark, method):
                continue
            for setting in settings or [()]:
                check_setting(f"{benchmark}-{method}", setting)
                cell = Path(runs_dir) / benchmark / method / setting_name(setting)
                for seed in range(seeds):
                    fields = {**(overrides or {}).get(benchmark, {}), **dict(setting)}
                    config = resolve_any(f"{benchmark}-{method}", fields | {"seed": seed})
                    runs.append(Run(benchmark, method, seed, config, cell / f"seed{seed}", setting))
    return runs


def check_setting(preset: str, setting: Setting) -> None:
    """ValueError when a swept field is not a setting of the preset's family."""
    family = preset_family(preset)
    foreign = [name for name, _ in setting if name not in family.field_names()]
    if foreign:
        raise ValueError(
            f"--grid {', '.join(foreign)}: not a setting of {family.label} presets ({preset}); "
            "leave that method out (--methods) or sweep one of its own fields"
        )


def resolve_any(preset: str, fields: dict[str, Any]) -> "TrainConfig | ScoreConfig | VAEConfig":
    """The preset's family's config: a GAN's TrainConfig, a score preset's ScoreConfig ("kind":
    "score"), a VAE preset's VAEConfig ("kind": "vae")."""
    return preset_family(preset).resolve(preset, fields)


def cached_result(run: Run) -> dict[str, Any] | None:
    """The run's result.json when it was computed with exactly this config, else None."""
    path = run.run_dir / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    # fields added to the run's config class since it ran hold their defaults (the old recipe)
    saved = type(run.config)().to_dict() | result.get("config", {})
    return result if saved == run.config.to_dict() else None


def needs_report(result: dict[str, Any]) -> bool:
    """True for a result judged by the mode rules alone, or without kl_exact (evaluated before
    the table recorded them): its run is evaluated again."""
    return result.get("verdict_rules") != "full" or "kl_exact" not in result


def at_goal(result: dict[str, Any]) -> bool | None:
    """Whether a Gaussian-mixture run meets the goal above; None for another reference or a
    result without the full report (or, from before it was recorded, kl_exact)."""
    if needs_report(result):
        return None
    ceiling = high_quality_ceiling(result["config"].get("dataset", result["benchmark"]))
    if ceiling is None:
        return None
    kl, kl_exact = result["kl"], result["kl_exact"]
    return bool(
        result["verdict"] == "healthy"
        and result["modes_covered"] == result["modes_total"]
        and result["high_quality_fraction"] >= ceiling - GOAL_HIGH_QUALITY_MARGIN
        and kl is not None
        and kl_exact is not None
        and kl <= kl_exact + GOAL_KL_MARGIN
        and result["coverage"] >= GOAL_COVERAGE_RATIO * result["coverage_identical"]
    )


@functools.cache
def high_quality_ceiling(dataset_name: str) -> float | None:
    """An exact sampler's high-quality share on a Gaussian-mixture dataset (98.89% in 2-D),
    None for an image dataset (each built once: a table summarises many runs of few datasets)."""
    dataset = get_dataset(dataset_name)
    return dataset.high_quality_probability() if isinstance(dataset, GaussianMixture) else None


def train_and_evaluate(run: Run, device: str = "cpu", amp: str = "auto") -> dict[str, Any]:
    """Train (or resume) the run on `device` (trainer.distributed.init_placement: auto, cpu,
    cuda, cuda:N; `amp` likewise), evaluate the final generator (the papers' protocol and the
    full report, trainer.evaluation.protocol_numbers), write and return result.json, which
    records the device.

    A finished run whose result.json predates the full report keeps that result's `seconds`
    (its training) and records this evaluation's as `report_seconds`. Runs in a worker process
    with one torch thread (the pool's jobs are the parallelism).
    """
    import torch

    torch.set_num_threads(1)
    placement = init_placement(device, amp)
    start = time.perf_counter()
    earlier = cached_result(run) if (run.run_dir / "checkpoint.pt").is_file() else None
    state = trained(run, placement)
    final, samples = state.evaluate(full=True), state.samples(64, 0)
    np.save(run.run_dir / "samples.npy", samples)  # the figure's panel: 64 samples of seed 0
    seconds = time.perf_counter() - start  # this call: training left + evaluation
    timing = {"seconds": seconds}
    if earlier is not None and state.step == earlier["config"]["steps"]:
        timing = {"seconds": earlier["seconds"], "report_seconds": seconds}
    result = {
        "benchmark": run.benchmark,
        "method": run.method,
        "seed": run.seed,
        "config": run.config.to_dict(),
        **({"setting": dict(run.setting)} if run.setting else {}),
        **final,
        **timing,
        "threads": torch.get_num_threads(),
        "device": str(placement.device),
    }
    (run.run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def can_resume(run: Run) -> bool:
    """False when run_dir holds a checkpoint of another recipe (an older table's run): the
    table owns its runs folder, so such a run starts over instead of failing."""
    try:
        check_run_dir(run.config, run.run_dir)
    except ValueError:
        return False
    return True


def trained(run: Run, placement: Placement | None = None) -> Any:
    """Train (or resume) the run with its family's recipe (trainer.runs.train) on placement
    (default the CPU); the final state."""
    build = FAMILIES.get(run.config.kind).build
    resume = can_resume(run)
    return train(build, run.config, run.run_dir, resume, progress=False, placement=placement)


def execute(
    runs: list[Run],
    jobs: int,
    progress: bool = True,
    train: bool = True,
    device: str = "cpu",
    amp: str = "auto",
) -> list[dict[str, Any]]:
    """Results of the runs (cached ones read back), training the rest `jobs` at a time on
    `device` (train_and_evaluate); with train=False only the finished runs' results."""
    results = {run.run_dir: cached_result(run) for run in runs}
    missing = []
    if train:  # not run yet, or evaluated before the full report was recorded
        missing = [
            run for run in runs if not results[run.run_dir] or needs_report(results[run.run_dir])
        ]
    failures: list[str] = []
    if missing and jobs == 1:
        for done, run in enumerate(missing, start=1):
            results[run.run_dir] = train_and_evaluate(run, device, amp)
            report_progress(progress, done, len(missing), results[run.run_dir])
    elif missing:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(train_and_evaluate, run, device, amp): run for run in missing}
            for done, future in enumerate(as_completed(futures), start=1):
                run = futures[future]
                try:
                    results[run.run_dir] = future.result()
                except Exception as error:  # the other runs go on; reported below
                    failures.append(f"{run.run_dir}: {type(error).__name__}: {error}")
                    print(f"[{done}/{len(missing)}] FAILED {failures[-1]}", flush=True)
                    continue
                report_progress(progress, done, len(missing), results[run.run_dir])
    if failures:
        raise RuntimeError(f"{len(failures)} run(s) failed: " + "; ".join(failures))
    return [results[run.run_dir] for run in runs if results[run.run_dir] is not None]


def report_progress(progress: bool, done: int, total: int, result: dict[str, Any]) -> None:
    """One line per finished run."""
    if progress:
        print(
            f"[{done}/{total}] {result['benchmark']} {result['method']} seed {result['seed']}: "
            f"{result['modes_covered']}/{result['modes_total']} modes, "
            f"{100 * result['high_quality_fraction']:.1f}% high quality, KL {result['kl']}, "
            f"{result['seconds']:.0f} s",
            flush=True,
        )


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size < 2:
        return float(array.mean()), 0.0
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (benchmark, method), in the order first seen: means and standard errors.

    KL is undefined for a run without a high-quality sample; such runs are counted in
    `kl_undefined` and left out of the KL mean.
    """
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for result in results:
        setting = setting_name(tuple(result.get("setting", {}).items()))
        cells.setdefault((result["benchmark"], result["method"], setting), []).append(result)
    rows = []
    for (benchmark, method, setting), cell in cells.items():
        row = {"benchmark": benchmark, "method": method, "seeds": len(cell)}
        row |= {"setting": setting} if setting else {}
        row["modes_total"] = cell[0]["modes_total"]
        for metric in METRICS:
            values = [r[metric] for r in cell if r.get(metric) is not None]
            row[metric] = mean_and_error(values) if values else None
        row["kl_undefined"] = sum(r["kl"] is None for r in cell)
        row["seeds_all"] = sum(r.get("modes_covered_all") is not None for r in cell)
        row["seeds_latent"] = sum(r.get("active_dims") is not None for r in cell)
        row["seeds_classes"] = sum(r.get("classes_healthy") is not None for r in cell)
        row["seeds_features"] = sum(r.get("coverage") is not None for r in cell)
        papers = [r["papers_rule"] for r in cell if r.get("papers_rule")]
        row["seeds_papers"] = len(papers)
        if papers:  # the same samples counted by the papers' radius (trainer.evaluation)
            row["papers_stds"] = papers[0]["high_quality_stds"]
            row["modes_papers"] = mean_and_error([p["modes_covered"] for p in papers])
            row["high_quality_papers"] = mean_and_error(
                [p["high_quality_fraction"] for p in papers]
            )
        row["classes"] = cell[0]["config"].get("classes", 0)
        verdicts = [r.get("verdict") for r in cell]
        row["healthy"] = None if None in verdicts else verdicts.count("healthy")
        row["seeds_mode_rules"] = sum(r.get("verdict_rules") != "full" for r in cell)
        goals = [at_goal(r) for r in cell]
        row["at_goal"] = None if None in goals else sum(goals)
        row["seconds"] = float(np.mean([r["seconds"] for r in cell]))
        row["steps"] = cell[0]["config"]["steps"]
        row["sample_steps"] = cell[0]["config"].get("sample_steps")  # a score model's
        row["sampler"] = cell[0]["config"].get("sampler")
        rows.append(row)
    return rows


def format_cell(
    value: tuple[float, float] | None, scale: float = 1.0, digits: int = 2, seeds: int = 2
) -> str:
    """'mean ± error' with `digits` decimals ('value' alone for one seed), or 'n/a'."""
    if value is None:
        return "n/a"
    mean, error = value
    if seeds < 2:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * error:.{digits}f}"


def markdown(
    rows: list[dict[str, Any]], command: str, seconds: float, unfinished: list[Run] = ()
) -> str:
    """collapse.md: our rows per benchmark (and the planned runs not finished, with
    --no-train), then the papers' rows for the same benchmark."""
    lines = [
        "# The collapse table",
        "",
        "Generated by `python -m trainer table` (trainer/table.py); do not edit by hand.",
        "",
        f"Command: `{command}`",
        "",
        "Each row: mean ± standard error over seeds 0..n-1 of the final generator, evaluated on",
        "the papers' protocol (2,500 samples on the 2-D mixtures, 10,000 on grid25-rare,",
        "26,000 on stacked digits (8x8; stacked-mnist: 28x28) and 260,000 on stacked-digits4;",
        "high quality = within 3 std of the nearest centre, or a confident digit classifier;",
        "a mode is captured when it holds a high-quality sample; KL(generated mode histogram ||",
        "reference) in nats, over the high-quality samples). Stacked digits' `every sample`",
        "columns count every sample by the classifier's argmax, confident or not, as the",
        "Stacked-MNIST papers do (an exact sampler: 1,000 modes, KL 0.019; stacked-digits4's",
        "real stacks at 260,000: 10,000 modes, KL 0.019-0.020). The same samples",
        "get the service's full report: `coverage` is its k-NN coverage (Naeem et al. 2020)",
        "against the reference, with what two identical distributions of these sizes score in",
        "brackets (lower: parts of the reference are missed, as by samples tighter than the",
        "data), and `healthy seeds` counts the seeds whose full verdict is healthy. On the",
        "Gaussian mixtures `seeds at the goal` counts the seeds that are healthy and cover every",
        "mode with high quality within 2 points of an exact sampler's share (98.89% in 2-D), KL",
        "within 0.005 of an exact sampler's with as many high-quality samples, and coverage at",
        "least 0.9 x that of identical distributions. Presets:",
        "`trainer/presets/<benchmark>-<method>.json`; per-run numbers: `collapse.json`.",
        f"Machine: {os.cpu_count()} CPU cores, one torch thread per run; this command took "
        f"{seconds / 60:.1f} min (runs already in the runs folder are reused). `wall s/run`: the",
        "mean wall time of the call that finished each run (training left, plus evaluation).",
        "",
    ]
    for benchmark in dict.fromkeys(row["benchmark"] for row in rows):
        ours = [row for row in rows if row["benchmark"] == benchmark]
        lines += [f"## {benchmark}", "", *section(benchmark, ours)]
        left = {}
        for run in unfinished:
            if run.benchmark == benchmark:
                left[run.row] = left.get(run.row, 0) + 1
        if left:
            missing = ", ".join(f"`{benchmark}-{m}` ({n} seed(s))" for m, n in left.items())
            lines += ["", f"Not run (no finished run in the runs folder): {missing}."]
        papers = PAPERS.get(benchmark, [])
        if papers:
            lines += [
                "",
                "The papers' numbers (their architectures and training budgets, not ours):",
                "",
                "| method | source | modes | high quality % | KL |",
                "|---|---|---|---|---|",
            ]
            lines += [f"| {m} | {s} | {modes} | {hq} | {kl} |" for m, s, modes, hq, kl in papers]
        lines.append("")
    return "\n".join(lines)


def section(benchmark: str, rows: list[dict[str, Any]]) -> list[str]:
    """One benchmark's rows as a markdown table; with the two every-sample columns when a run
    of this benchmark recorded them (classifier references), the active latent dimensions
    when a VAE run did, and the healthy classes when a conditional run did. "coverage": the
    full report's k-NN coverage, with what identical distributions score in brackets;
    "healthy seeds": the seeds whose verdict is healthy (the full report's; seeds evaluated
    before it was recorded count by the mode rules, and the cell says how many); "seeds at the
    goal" (Gaussian mixtures): the seeds meeting the goal of at_goal."""
    every = any(row.get("seeds_all") for row in rows)
    latent = any(row.get("seeds_latent") for row in rows)
    conditional = any(row.get("seeds_classes") for row in rows)
    papers = next((row["papers_stds"] for row in rows if row.get("seeds_papers")), None)
    goal = any(row.get("at_goal") is not None for row in rows)
    header = f"| method | preset | seeds | steps | modes (of {rows[0]['modes_total']}) "
    header += "| high quality % | KL |"
    header += " modes, every sample | KL, every sample |" if every else ""
    header += " active latent dims |" if latent else ""
    header += " healthy classes |" if conditional else ""
    header += (
        f" modes, papers' {papers:g} std | high quality %, papers' {papers:g} std |"
        if papers
        else ""
    )
    header += " coverage (identical) | healthy seeds |"
    header += " seeds at the goal |" if goal else ""
    columns = 10 + 2 * every + latent + conditional + 2 * bool(papers) + goal
    lines = [header + " wall s/run |", "|---" * columns + "|"]
    for row in rows:
        seeds = row["seeds"]
        kl = format_cell(row["kl"], digits=3, seeds=seeds - row["kl_undefined"])
        if row["kl_undefined"]:
            kl += f" ({row['kl_undefined']} run(s) without high-quality samples: undefined)"
        label = method_label(row)
        label += f", {row['setting']}" if row.get("setting") else ""
        line = (
            f"| {label} "
            f"| `{benchmark}-{row['method']}` | {seeds} | {row['steps']} "
            f"| {format_cell(row['modes_covered'], digits=1, seeds=seeds)} "
            f"| {format_cell(row['high_quality_fraction'], 100.0, 1, seeds)} | {kl} |"
        )
        if every:
            seeds_all = row.get("seeds_all", 0)
            line += f" {format_cell(row.get('modes_covered_all'), digits=1, seeds=seeds_all)} |"
            line += f" {format_cell(row.get('kl_all'), digits=3, seeds=seeds_all)} |"
        if latent:
            seeds_latent = row.get("seeds_latent", 0)
            line += f" {format_cell(row.get('active_dims'), digits=1, seeds=seeds_latent)} |"
        if conditional:
            healthy_classes = row.get("classes_healthy")
            text = format_cell(healthy_classes, digits=1, seeds=row.get("seeds_classes", 0))
            line += f" {text} of {row['classes']} |" if healthy_classes else " n/a |"
        if papers:
            seeds_papers = row.get("seeds_papers", 0)
            line += f" {format_cell(row.get('modes_papers'), digits=1, seeds=seeds_papers)} |"
            line += f" {format_cell(row.get('high_quality_papers'), 100.0, 1, seeds_papers)} |"
        line += f" {coverage_cell(row)} | {healthy_cell(row)} |"
        if goal:
            at = row.get("at_goal")
            line += " n/a |" if at is None else f" {at} of {seeds} |"
        lines.append(line + f" {row['seconds']:.0f} |")
    return lines


def method_label(row: dict[str, Any]) -> str:
    """A row's method as the table names it; a score model's with its sampler and steps."""
    template = SAMPLER_LABELS.get(row["method"])
    steps, sampler = row.get("sample_steps"), row.get("sampler")
    if template is None or steps is None or sampler is None:
        return METHOD_LABELS.get(row["method"], row["method"])
    evaluations = network_evaluations(steps, sampler)
    return template.format(sampler=sampler.capitalize(), steps=steps, evaluations=evaluations)


def coverage_cell(row: dict[str, Any]) -> str:
    """'0.27 ± 0.02 (0.97)': the seeds' coverage and the identical distributions' mean; 'n/a'
    when no seed recorded it, and the count when only some did."""
    seeds = row.get("seeds_features", 0)
    if not seeds:
        return "n/a"
    text = format_cell(row["coverage"], digits=3, seeds=seeds)
    text += f" ({row['coverage_identical'][0]:.3f})"
    return text if seeds == row["seeds"] else f"{text}, {seeds} seed(s)"


def healthy_cell(row: dict[str, Any]) -> str:
    """'3 of 5', with '(2 by the mode rules only)' for seeds evaluated without the full report."""
    healthy = row.get("healthy")
    if healthy is None:
        return "n/a"
    text = f"{healthy} of {row['seeds']}"
    modes_only = row.get("seeds_mode_rules", 0)
    if modes_only == row["seeds"]:
        return f"{text} (mode rules)"
    return f"{text} ({modes_only} by the mode rules only)" if modes_only else text


def draw_figure(runs: list[Run], path: Path) -> None:
    """collapse.png: one panel per (benchmark, method), the samples of its lowest seed (seed 0
    when it ran): 2-D scatter over the mixture centres, or an 8x8 grid of images."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from trainer.plot import draw_samples  # matplotlib only when a figure is drawn

    cells: dict[tuple[str, str], Run] = {}
    for run in sorted(runs, key=lambda run: run.seed):  # each cell's lowest finished seed
        cells.setdefault((run.benchmark, run.row), run)
    first = list(cells.values())
    benchmarks = list(dict.fromkeys(run.benchmark for run in first))
    methods = list(dict.fromkeys(run.row for run in first))
    figure = Figure(figsize=(2.2 * len(methods), 2.3 * len(benchmarks)), dpi=100)
    axes = figure.subplots(len(benchmarks), len(methods), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for run in first:
        ax = axes[benchmarks.index(run.benchmark), methods.index(run.row)]
        draw_samples(ax, np.load(run.run_dir / "samples.npy"), run.benchmark)
        ax.set_title(f"{run.benchmark}\n{run.row}, seed {run.seed}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")


def result_key(result: dict[str, Any]) -> tuple[str, str, str, int]:
    """(benchmark, method, setting name, seed) of a result: what tells its run apart."""
    setting = setting_name(tuple(result.get("setting", {}).items()))
    return result["benchmark"], result["method"], setting, result["seed"]


def run_key(run: Run) -> tuple[str, str, str, int]:
    """result_key of the run's result."""
    return run.benchmark, run.method, setting_name(run.setting), run.seed


def build_table(
    benchmarks: Iterable[str],
    methods: Iterable[str],
    seeds: int,
    runs_dir: Path,
    out_dir: Path,
    command: str,
    jobs: int = 1,
    overrides: dict[str, dict[str, Any]] | None = None,
    train: bool = True,
    progress: bool = True,
    settings: list[Setting] | None = None,
    device: str = "cpu",
    amp: str = "auto",
) -> Path:
    """Run (or reuse) every run, then write collapse.md, collapse.json and collapse.png into
    out_dir; returns the markdown's path. With train=False the table holds the finished runs;
    settings (--grid points, trainer.grid) make one row per method and setting; device, amp:
    where the runs left to train train (execute)."""
    start = time.perf_counter()
    if train:
        resolve_amp(amp, resolve_device(device))  # before any run: ValueError naming the fix
    runs = plan(benchmarks, methods, seeds, runs_dir, overrides, settings)
    results = execute(runs, jobs, progress, train, device, amp)
    if not results:
        raise ValueError(f"no finished runs under {runs_dir} for this table")
    finished = {result_key(result) for result in results}
    unfinished = [run for run in runs if run_key(run) not in finished]
    runs = [run for run in runs if run_key(run) in finished]
    rows = summarise(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = time.perf_counter() - start
    document = {"command": command, "rows": rows, "runs": results}
    (out_dir / "collapse.json").write_text(json.dumps(document, indent=2) + "\n")
    draw_figure(runs, out_dir / "collapse.png")
    path = out_dir / "collapse.md"
    path.write_text(markdown(rows, command, seconds, unfinished))
    return path
