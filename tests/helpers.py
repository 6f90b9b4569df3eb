"""Helpers the tests import: configs, tiny trained models, exact mixture draws."""

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from service.config import ServiceConfig

TINY_GAN = {
    "steps": 20,
    "g_hidden": 16,
    "g_depth": 2,
    "d_hidden": 16,
    "d_depth": 2,
    "batch_size": 32,
    "eval_every": 0,
    "snapshot_every": 10,
}


def train_and_export(runs: Path, models: Path, dataset: str, name: str) -> None:
    """A few real training steps on `dataset`, exported by the trainer as `name`."""
    from trainer.config import TrainConfig
    from trainer.export import export_gan
    from trainer.training_loop import training_loop

    config = replace(TrainConfig(), dataset=dataset, **TINY_GAN)
    training_loop(config, runs / name, resume=False, progress=False)
    export_gan(runs / name, models, name)


TINY_SCORE = {
    "width": 16,
    "depth": 1,
    "sigma_max": 10.0,
    "batch_size": 64,
    "steps": 20,
    "eval_every": 0,
    "snapshot_every": 10,
}


def train_and_export_score(runs: Path, models: Path, dataset: str, name: str) -> None:
    """A few real EDM training steps on `dataset`, exported by the trainer as `name`."""
    from trainer.edm.config import ScoreConfig
    from trainer.edm.export import export_score
    from trainer.edm.training_loop import score_training_loop

    config = ScoreConfig(dataset=dataset, **TINY_SCORE)
    score_training_loop(config, runs / name, resume=False, progress=False)
    export_score(runs / name, models, name)


def copy_model(models: Path, source: str, name: str) -> None:
    """models/<name>: a copy of models/<source> under another name (the same files)."""
    shutil.copytree(models / source, models / name)
    card = json.loads((models / name / "card.json").read_text())
    (models / name / "card.json").write_text(json.dumps({**card, "name": name}))


def make_config(repository: Path, **overrides: object) -> ServiceConfig:
    """CPU, the given repository, a fresh data folder (unless overridden)."""
    config = ServiceConfig(
        model_repository=repository,
        device="cpu",
        data_dir=Path(tempfile.mkdtemp(prefix="collapse-lab-data-")),
    )
    return replace(config, **overrides)


def draw_mixture(reference: dict, n: int, modes: list[int] | None, seed: int = 0) -> np.ndarray:
    """n exact draws from the mixture in `reference`, restricted to `modes` (all when None)."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(reference["centres"])
    chosen = np.arange(len(centres)) if modes is None else np.asarray(modes)
    index = rng.choice(chosen, size=n)
    return centres[index] + reference["std"] * rng.standard_normal((n, centres.shape[1]))


def approx_tree(value: object, rel: float = 1e-6) -> object:
    """A JSON-like value with every float wrapped in pytest.approx(rel=rel), for comparing
    reports whose floats pass through BLAS kernels that differ between CPUs (eigenvalues of the
    Vendi score's kernel matrix moved by 1.6e-9 relative between two x86 machines)."""
    if isinstance(value, dict):
        return {key: approx_tree(item, rel) for key, item in value.items()}
    if isinstance(value, list):
        return [approx_tree(item, rel) for item in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=rel)
    return value


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """`python -m trainer` main(argv) in-process -> (exit status, stdout, stderr); capsys is
    pytest's fixture."""
    from trainer.cli import main

    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err
