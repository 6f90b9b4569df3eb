"""Export a trained generator to the model repository (models/<name>/<version>/model.onnx)
with a card (models/<name>/card.json) valid against lab/schemas/card.schema.json.

The card records what the service and a reader need: input/output tensors, the reference the
diagnostics compare against, the architecture arguments and resolved training config, the
torch-vs-onnxruntime parity error, the file's sha256 and the diagnostics measured at export on
the same latents the service would draw (lab.sampling.gaussian_latents).
"""

import contextlib
import datetime
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from lab.cards import check_name, next_version, read_card, sha256, to_jsonable, write_card
from lab.noise import gaussian_latents
from trainer.datasets import get_dataset
from trainer.nets import ARCHITECTURES

OPSET = 18
MAX_IR_VERSION = 10  # onnxruntime 1.31 loads IR <= 13; onnx 1.23 writes 14 unless told
PARITY_TOLERANCE = 1e-4  # max |torch - onnxruntime| allowed at export
PARITY_INPUTS = 4096
PARITY_SEED = 1
DIAGNOSTICS_SAMPLES = {"default": 2500, "stacked-digits": 26_000}  # the papers' protocol
DIAGNOSTICS_SEED = 0
EXPORT_BATCH = 8  # >= 2, so torch.export keeps the batch axis symbolic


def load_generator(run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The generator of run_dir/checkpoint.pt in eval mode, and the checkpoint's metadata."""
    checkpoint = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    architecture = checkpoint["architecture"]
    generator, _ = ARCHITECTURES.get(architecture["name"])(**architecture["args"])
    # "g-ema" runs sample from the average of G's weights (trainer.mitigations)
    generator.load_state_dict(checkpoint.get("generator_average", checkpoint["generator"]))
    meta = {k: checkpoint[k] for k in ("architecture", "config", "step")}
    return generator.eval(), meta


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known third-party chatter (not our warnings)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings():
            # torch.export's pytree still calls a deprecated LeafSpec check (torch 2.13).
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            # Inputs sharing the batch axis (x and sigma of a denoiser) share its one name.
            warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used.*")
            yield
    finally:
        registration.setLevel(level)


def module_to_onnx(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    input_name: str | list[str],
    output_names: list[str],
) -> onnx.ModelProto:
    """module(*example) -> ONNX (opset 18, IR <= 10) with a dynamic batch axis, checked.

    example: one tensor (named input_name) or a tuple of tensors (named by the list
    input_name) sharing a batch of at least 2 (EXPORT_BATCH), so torch.export keeps the batch
    axis symbolic; every input's first axis is that same batch.
    """
    examples = example if isinstance(example, tuple) else (example,)
    input_names = input_name if isinstance(input_name, list) else [input_name]
    batch = torch.export.Dim("batch")
    with quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            examples,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=tuple({0: batch} for _ in examples),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            report=False,
        )
    model = program.model_proto
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(generator: nn.Module, latent_dim: int) -> onnx.ModelProto:
    """G -> ONNX: input z [batch, latent_dim], output samples [batch, ...]."""
    return module_to_onnx(generator, torch.zeros(EXPORT_BATCH, latent_dim), "z", ["samples"])


def run_onnx(path: Path, z: np.ndarray) -> np.ndarray:
    """The ONNX file on the CPU provider: z [n, latent_dim] float32 -> samples [n, d] float32."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["samples"], {"z": z})[0]


def measure_parity(generator: nn.Module, path: Path, latent_dim: int) -> dict[str, Any]:
    """torch vs onnxruntime on PARITY_INPUTS service latents; RuntimeError above tolerance.

    max_rel_error is elementwise |torch - ort| / max(|torch|, 1e-3), the floor keeping
    coordinates near 0 from dividing by ~0.
    """
    z = gaussian_latents(PARITY_INPUTS, latent_dim, PARITY_SEED)
    with torch.no_grad():
        expected = generator(torch.from_numpy(z)).numpy().astype(np.float64)
    actual = run_onnx(path, z).astype(np.float64)
    error = np.abs(expected - actual)
    parity = {
        "max_abs_error": float(error.max()),
        "max_rel_error": float((error / np.maximum(np.abs(expected), 1e-3)).max()),
        "n_inputs": PARITY_INPUTS,
    }
    if not parity["max_abs_error"] <= PARITY_TOLERANCE:  # also catches NaN
        raise RuntimeError(f"ONNX parity failed: {parity} (tolerance {PARITY_TOLERANCE})")
    return parity


def export_diagnostics(
    path: Path, latent_dim: int, dataset_name: str, models_dir: Path | None = None
) -> dict[str, Any]:
    """The service's report on onnxruntime samples from service latents (seed 0): the papers'
    protocol size, 2,500 for the 2-D mixtures and 26,000 for the image datasets; image samples
    are judged by the classifier reference in models_dir (default: the bundled repository)."""
    from trainer.evaluation import REFERENCE_MODELS, diagnose_samples

    n = DIAGNOSTICS_SAMPLES.get(dataset_name, DIAGNOSTICS_SAMPLES["default"])
    z = gaussian_latents(n, latent_dim, DIAGNOSTICS_SEED)
    report = diagnose_samples(run_onnx(path, z), dataset_name, models_dir or REFERENCE_MODELS)
    return {**to_jsonable(report), "n": n, "seed": DIAGNOSTICS_SEED}


def utc_now() -> str:
    """ISO 8601 UTC time, seconds precision."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def output_spec(generator: nn.Module, latent_dim: int) -> dict[str, Any]:
    """The card's `output` tensor: shape [-1, *sample shape] measured on the generator, and its
    `value_range` attribute ([-1, 1] for tanh image generators) or null (unbounded points)."""
    with torch.no_grad():
        shape = generator(torch.zeros(2, latent_dim)).shape[1:]
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
) -> dict[str, Any]:
    """The `gan` card for the newest version; `meta` is load_generator's checkpoint metadata,
    `output` is output_spec's tensor description."""
    config, architecture = meta["config"], meta["architecture"]
    latent_dim = architecture["args"]["latent_dim"]
    return {
        "schema_version": 1,
        "name": name,
        "kind": "gan",
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
    check_name(name)
    generator, meta = load_generator(Path(run_dir))
    model_dir = Path(models_dir) / name
    previous = read_card(model_dir)
    if previous is not None and previous.get("kind") != "gan":
        raise ValueError(f"{model_dir} holds a {previous.get('kind')!r} card, not a gan")
    version = next_version(model_dir, previous) if version is None else version
    latent_dim = meta["architecture"]["args"]["latent_dim"]
    entry = write_version(generator, model_dir / str(version), version, latent_dim)
    try:
        diagnostics = export_diagnostics(
            model_dir / entry["file"], latent_dim, meta["config"]["dataset"]
        )
    except BaseException:
        shutil.rmtree(model_dir / str(version))
        raise
    older = [v for v in (previous or {}).get("versions", []) if v["version"] != version]
    versions = sorted(older + [entry], key=lambda v: v["version"])
    description = description or default_description(meta)
    output = output_spec(generator, latent_dim)
    card = gan_card(name, description, meta, versions, diagnostics, output)
    from trainer.half import half_version  # it imports this module

    try:  # the float16 graph beside it, where parity allows (for CUDA)
        half_version(model_dir, card, entry)
    except BaseException:
        shutil.rmtree(model_dir / str(version))
        raise
    return write_card(model_dir, card)


def write_version(generator: nn.Module, version_dir: Path, version: int, latent_dim: int) -> dict:
    """Export, save, hash and parity-check one version; the card's `versions` entry.

    Nothing is left behind on failure. ValueError when version_dir exists, RuntimeError when
    parity fails.
    """
    if version_dir.exists():
        raise ValueError(f"{version_dir} already exists; choose another version")
    model = to_onnx(generator, latent_dim)
    return save_version(
        model, version_dir, version, lambda path: measure_parity(generator, path, latent_dim)
    )


def save_version(
    model: onnx.ModelProto,
    version_dir: Path,
    version: int,
    parity_of: Callable[[Path], dict[str, Any]],
) -> dict[str, Any]:
    """Save model as version_dir/model.onnx, measure parity_of(its path) (which raises above
    tolerance), and return the card's `versions` entry; nothing is left behind on failure."""
    version_dir.mkdir(parents=True)
    path = version_dir / "model.onnx"
    try:
        onnx.save_model(model, path)
        parity = parity_of(path)
    except BaseException:
        shutil.rmtree(version_dir)
        raise
    return {
        "version": version,
        "file": f"{version}/model.onnx",
        "sha256": sha256(path),
        "opset": OPSET,
        "ir_version": int(model.ir_version),
        "parity": parity,
    }


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
    return (
        f"{dataset.num_modes}-mode isotropic Gaussian mixture ({dataset_name}), std "
        f"{dataset.std}, equal weights: the analytic reference for mode counting."
    )
