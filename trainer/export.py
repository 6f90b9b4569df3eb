"""Export a trained GAN generator to the model repository (models/<name>/<version>/model.onnx,
its float16 graph where parity allows) with a `gan` card (models/<name>/card.json), through the
shared skeleton (trainer.onnx_export.export_model); also the mixtures' `reference` cards.

The card records what the service and a reader need: input/output tensors, the reference the
diagnostics compare against, the architecture arguments and resolved training config, the
torch-vs-onnxruntime parity error, the file's sha256 and the diagnostics measured at export on
the same latents the service would draw (lab.sampling.gaussian_latents).
"""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from lab.cards import write_card
from lab.conditioning import LABEL_INPUT
from lab.noise import gaussian_latents
from trainer.conditioning import conditional_card, every_class
from trainer.datasets import get_dataset
from trainer.diagnose import gan_diagnostics, run_onnx
from trainer.half import half_version
from trainer.nets.conditional import ConditionalGenerator, build_networks
from trainer.onnx_export import (
    EXPORT_BATCH,
    PARITY_INPUTS,
    PARITY_SEED,
    PARITY_TOLERANCE,
    export_model,
    module_to_onnx,
    save_version,
    utc_now,
)


def load_generator(run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The generator of run_dir/checkpoint.pt in eval mode, and the checkpoint's metadata."""
    checkpoint = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    architecture = checkpoint["architecture"]
    generator, _ = build_networks(architecture)
    # "g-ema" runs sample from the average of G's weights (trainer.mitigations)
    generator.load_state_dict(checkpoint.get("generator_average", checkpoint["generator"]))
    meta = {k: checkpoint[k] for k in ("architecture", "config", "step")}
    return generator.eval(), meta


def to_onnx(generator: nn.Module, latent_dim: int) -> onnx.ModelProto:
    """G -> ONNX: input z [batch, latent_dim] (and a conditional G's labels [batch] int64),
    output samples [batch, ...]."""
    inputs = generator_inputs(generator, np.zeros((EXPORT_BATCH, latent_dim), np.float32))
    names = ["z", LABEL_INPUT["name"]][: len(inputs)]
    return module_to_onnx(generator, tuple(torch.from_numpy(x) for x in inputs), names, ["samples"])


def generator_inputs(generator: nn.Module, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """G's inputs for latents z [n, latent_dim]: (z,), or for a conditional G (z, labels) with
    every class in turn (trainer.conditioning.every_class, for export and parity checks)."""
    labels = every_class(len(z), generator_classes(generator))
    return (z,) if labels is None else (z, labels)


def generator_classes(generator: nn.Module) -> int:
    """A conditional G's number of classes; 0 for an unconditional G."""
    if not isinstance(generator, ConditionalGenerator):
        return 0
    return generator.embedding.num_embeddings


def measure_parity(generator: nn.Module, path: Path, latent_dim: int) -> dict[str, Any]:
    """torch vs onnxruntime on PARITY_INPUTS service latents; RuntimeError above tolerance.

    max_rel_error is elementwise |torch - ort| / max(|torch|, 1e-3), the floor keeping
    coordinates near 0 from dividing by ~0.
    """
    inputs = generator_inputs(generator, gaussian_latents(PARITY_INPUTS, latent_dim, PARITY_SEED))
    with torch.no_grad():
        expected = generator(*map(torch.from_numpy, inputs)).numpy().astype(np.float64)
    actual = run_onnx(path, *inputs).astype(np.float64)
    error = np.abs(expected - actual)
    parity = {
        "max_abs_error": float(error.max()),
        "max_rel_error": float((error / np.maximum(np.abs(expected), 1e-3)).max()),
        "n_inputs": PARITY_INPUTS,
    }
    if not parity["max_abs_error"] <= PARITY_TOLERANCE:  # also catches NaN
        raise RuntimeError(f"ONNX parity failed: {parity} (tolerance {PARITY_TOLERANCE})")
    return parity


def output_spec(generator: nn.Module, latent_dim: int) -> dict[str, Any]:
    """The card's `output` tensor: shape [-1, *sample shape] measured on the generator, and its
    `value_range` attribute ([-1, 1] for tanh image generators) or null (unbounded points)."""
    inputs = generator_inputs(generator, np.zeros((2, latent_dim), np.float32))
    with torch.no_grad():
        shape = generator(*map(torch.from_numpy, inputs)).shape[1:]
    value_range = getattr(generator, "value_range", None)
    return {
        "name": "samples",
        "dtype": "float32",
        "shape": [-1, *shape],
        "value_range": None if value_range is None else list(value_range),
    }


def gan_card(
    name: str,
    description: str,
    meta: dict[str, Any],
    versions: list[dict],
    diagnostics: dict,
    output: dict[str, Any],
    kind: str = "gan",
) -> dict[str, Any]:
    """The `gan` card (or, with kind "vae", a VAE decoder's, which has the same fields) for the
    newest version; `meta` is load_generator's checkpoint metadata, `output` is output_spec's
    tensor description."""
    config, architecture = meta["config"], meta["architecture"]
    latent_dim = architecture["args"]["latent_dim"]
    return {
        "schema_version": 1,
        "name": name,
        "kind": kind,
        "description": description,
        "created": utc_now(),
        "versions": versions,
        "latent_dim": latent_dim,
        "input": {"name": "z", "dtype": "float32", "shape": [-1, latent_dim]},
        "output": output,
        "reference": config["dataset"],
        "dataset": config["dataset"],
        "architecture": architecture,
        "training": config,
        "diagnostics": diagnostics,
    }


def export_gan(
    run_dir: Path,
    models_dir: Path,
    name: str,
    version: int | None = None,
    description: str | None = None,
) -> Path:
    """Export run_dir's generator as models_dir/<name>/<version>/model.onnx, and its float16
    graph where parity allows (trainer/half.py); returns the card's path.

    version defaults to the previous largest + 1; older versions stay listed in the card.
    ValueError for bad requests (invalid name, existing version, a non-gan card of that name);
    RuntimeError when parity exceeds PARITY_TOLERANCE (nothing is left behind).
    """
    generator, meta = load_generator(Path(run_dir))
    text = description or default_description(meta)
    return export_generator(generator, meta, models_dir, name, version, text)


def export_generator(
    generator: nn.Module,
    meta: dict[str, Any],
    models_dir: Path,
    name: str,
    version: int | None,
    description: str,
    kind: str = "gan",
    extra: dict[str, Any] | None = None,
) -> Path:
    """The export of a model served as G(z) (a GAN's generator, kind "gan"; a VAE's decoder,
    kind "vae"): the ONNX version with its parity, the card (gan_card, plus the `extra` keys),
    its diagnostics and the float16 graph where parity allows; the card's path."""
    latent_dim = meta["architecture"]["args"]["latent_dim"]

    def write(version_dir: Path, number: int) -> dict[str, Any]:
        return write_version(generator, version_dir, number, latent_dim)

    def make_card(model_dir: Path, entry: dict, versions: list[dict]) -> dict[str, Any]:
        output = output_spec(generator, latent_dim)
        card = gan_card(name, description, meta, versions, {}, output, kind) | (extra or {})
        card |= conditional_card(card["dataset"], generator_classes(generator))
        card["diagnostics"] = gan_diagnostics(model_dir / entry["file"], card)
        if "conditional" not in card:  # trainer/half.py casts one float input: z alone
            half_version(model_dir, card, entry)  # the float16 graph, where parity allows
        return card

    return export_model(models_dir, name, kind, version, write, make_card)


def write_version(generator: nn.Module, version_dir: Path, version: int, latent_dim: int) -> dict:
    """Export, save, hash and parity-check one version; the card's `versions` entry.

    Nothing is left behind on failure (RuntimeError when parity fails).
    """
    model = to_onnx(generator, latent_dim)
    return save_version(
        model, version_dir, version, lambda path: measure_parity(generator, path, latent_dim)
    )


def default_description(meta: dict[str, Any]) -> str:
    """A one-line description from the training config."""
    config = meta["config"]
    fixes = config.get("mitigations") or []
    return (
        f"{config['loss']} GAN ({config['arch']}{', ' + ', '.join(fixes) if fixes else ''}) "
        f"trained on {config['dataset']} for {meta['step']} steps, seed {config['seed']}."
    )


def export_reference(dataset_name: str, models_dir: Path, description: str | None = None) -> Path:
    """models_dir/<dataset>/card.json of kind `reference` (the analytic mixture); its path."""
    dataset = get_dataset(dataset_name)
    model_dir = Path(models_dir) / dataset_name
    model_dir.mkdir(parents=True, exist_ok=True)
    card = {
        "schema_version": 1,
        "name": dataset_name,
        "kind": "reference",
        "description": description or reference_description(dataset_name),
        "created": utc_now(),
        "dataset": dataset_name,
        "reference": dataset.reference_spec(),
    }
    return write_card(model_dir, card)


def reference_description(dataset_name: str) -> str:
    """A one-line description of a mixture reference."""
    dataset = get_dataset(dataset_name)
    weights = dataset.weights.tolist()
    if max(weights) - min(weights) < 1e-12:
        shares = "equal weights"
    else:
        low, high = min(weights), max(weights)
        rare = [k for k, weight in enumerate(weights) if weight == low]
        shares = f"unequal weights: modes {rare} hold {low:g} each, the rest {high:g}"
    optional, protocol = dataset.protocol_spec(), ""
    if "noise_dims" in optional:
        protocol = f", noise on axes 0-{optional['noise_dims'] - 1} of {dataset.dim}"
    if "high_quality_stds" in optional:
        protocol += f", high quality within {optional['high_quality_stds']:g} std"
    return (
        f"{dataset.num_modes}-mode isotropic Gaussian mixture ({dataset_name}), std "
        f"{dataset.std}, {shares}{protocol}: the analytic reference for mode counting."
    )
