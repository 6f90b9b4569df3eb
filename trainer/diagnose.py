"""The diagnostics a card holds: the service's report on the papers' number of samples, drawn
from the exported ONNX files exactly as the service draws them.

Measured at export (trainer.export for a GAN: seed 0; trainer.edm.export for a score model:
seed 1, with the card's default steps and sampler, and again by `fuse` when the fused graph
serves that request; trainer.ensemble for an ensemble: seed 0, its members as the service
draws them). When the report gains keys or a rule changes,
`python -m trainer diagnose models/<name>` measures the newest version again the same way,
without its checkpoint, and rewrites the card's `diagnostics`.
"""

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from lab import runtime
from lab.cards import (
    ENSEMBLE,
    LATENT_KINDS,
    SERVABLE_KINDS,
    newest_version,
    read_card,
    to_jsonable,
    write_card,
)
from lab.conditioning import DEFAULT_CHOICE, LABEL_INPUT
from lab.diagnostics.classes import Classes, request_classes
from lab.ensembles import ensemble_members, file_ensemble_drawer
from lab.sampling import DEFAULT_MAX_BATCH, file_sampler, generator_drawer
from trainer.evaluation import REFERENCE_MODELS, diagnose_samples

# The protocol's sample sizes: the papers' 2,500 and 26,000; grid25-rare's 10,000, at which an
# exact sampler misses one of its 0.2% modes with probability 2e-9 (trainer.datasets.mixtures);
# stacked-digits4's 260,000, the stacked protocol's 26 samples a mode over its 10,000 modes.
DIAGNOSTICS_SAMPLES = {
    "default": 2500,
    "stacked-digits": 26_000,
    "grid25-rare": 10_000,
    "stacked-digits4": 260_000,
}
GAN_SEED = 0
SCORE_SEED = 1


def run_onnx(path: Path, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """A GAN's ONNX file on the CPU provider: z [n, latent_dim] float32 (and a conditional
    GAN's labels [n] int64) -> samples [n, ...] float32."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {"z": z} | ({} if labels is None else {LABEL_INPUT["name"]: labels})
    return session.run(["samples"], inputs)[0]


def default_classes(card: dict[str, Any], n: int, seed: int) -> Classes | None:
    """The classes of the n samples of a request of `seed` that sets no labels (the card's class
    mix), for a conditional card's classes section; None for an unconditional card."""
    return request_classes(card, DEFAULT_CHOICE, n, seed)


def sample_count(dataset_name: str) -> int:
    """The protocol's size: 2,500 for the 2-D mixtures (10,000 for grid25-rare), 26,000 for
    stacked digits and 260,000 for stacked-digits4."""
    return DIAGNOSTICS_SAMPLES.get(dataset_name, DIAGNOSTICS_SAMPLES["default"])


def gan_diagnostics(
    path: Path, card: dict[str, Any], models_dir: Path | None = None
) -> dict[str, Any]:
    """The service's report on the samples of the GAN file at `path` as the service draws them
    for seed GAN_SEED (lab.sampling.generator_drawer: the card's input name and declared latent
    distribution, its batch size); image samples are judged by the classifier reference in
    models_dir (default: the bundled repository). `card` needs input, latent_dim (and latent,
    when declared) and dataset."""
    n = sample_count(card["dataset"])
    session = runtime.create_session(path, "cpu")
    draw = generator_drawer(session, card, DEFAULT_MAX_BATCH)
    classes = default_classes(card, n, GAN_SEED)
    report = diagnose_samples(
        draw(n, GAN_SEED), card["dataset"], models_dir or REFERENCE_MODELS, classes=classes
    )
    return {**to_jsonable(report), "n": n, "seed": GAN_SEED}


def score_diagnostics(
    card: dict[str, Any], model_dir: Path, version: dict[str, Any], models_dir: Path
) -> dict[str, Any]:
    """The report on samples drawn as the service draws them for seed SCORE_SEED and the
    card's default steps and sampler (its session factory, batch size, and the version's fused
    graph when it matches; lab.sampling.file_sampler): what POST /v1/models/{name}/diagnose
    returns for that request (with the classes section of a conditional model's default
    labels). Image samples are judged by the classifier reference in models_dir."""
    steps, sampler = card["sampler"]["steps"], card["sampler"]["name"]
    n = sample_count(card["dataset"])
    draw = file_sampler(model_dir, card, version, steps, sampler)
    classes = default_classes(card, n, SCORE_SEED)
    report = diagnose_samples(draw(n, SCORE_SEED), card["dataset"], models_dir, classes=classes)
    return {**to_jsonable(report), "n": n, "seed": SCORE_SEED, "steps": steps, "sampler": sampler}


def ensemble_diagnostics(models_dir: Path, card: dict[str, Any]) -> dict[str, Any]:
    """The report on the newest version's samples as the service draws them for seed GAN_SEED
    (lab.ensembles.file_ensemble_drawer), with its `ensemble` section."""
    version = newest_version(card)
    n = sample_count(card["dataset"])
    samples = file_ensemble_drawer(models_dir, card, version)(n, GAN_SEED)
    members = ensemble_members(version, n, GAN_SEED)
    report = diagnose_samples(samples, card["dataset"], models_dir, members=members)
    return {**to_jsonable(report), "n": n, "seed": GAN_SEED}


def rediagnose(model_dir: Path) -> Path:
    """Measure the card's diagnostics again on the newest version in model_dir (references
    from model_dir's parent repository) and write the card; the card's path.

    ValueError when model_dir holds no gan, vae, score or ensemble card.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    kind = card and card.get("kind")
    if kind not in SERVABLE_KINDS:
        raise ValueError(f"{model_dir} holds no gan, vae, score or ensemble card")
    newest = max(card["versions"], key=lambda version: version["version"])
    if kind == ENSEMBLE:
        diagnostics = ensemble_diagnostics(model_dir.parent, card)
    elif kind in LATENT_KINDS:
        diagnostics = gan_diagnostics(model_dir / newest["file"], card, model_dir.parent)
    else:
        diagnostics = score_diagnostics(card, model_dir, newest, model_dir.parent)
    card["diagnostics"] = diagnostics
    return write_card(model_dir, card)
