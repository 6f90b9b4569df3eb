"""Half precision: a GAN generator's ONNX graph with float16 weights and arithmetic, float32 in
and out, kept beside the float32 file when its samples stay close enough.

    python -m trainer half models/stacked-digits-gan      # every version of an exported GAN

On a GPU float16 halves the memory traffic and runs on the tensor cores; on the CPU it gains
nothing, so the service runs these files only on CUDA (FP16=auto, service/config.py). The
conversion uses onnx alone: float32 initializers and Constant values become float16, casts to
float32 inside the graph cast to float16, and one Cast at the input and one at the output keep
the card's float32 tensors. Parity is measured against the float32 file through onnxruntime's
CPU provider on the service's latents (PARITY_INPUTS of seed PARITY_SEED), and the file is kept
only within the dataset's tolerance (half_tolerance): 1% of the value range for images, a tenth
of the mode standard deviation for the 2-D mixtures (so no sample moves by more than 1/30 of
the 3-std high-quality radius).
"""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lab import runtime
from lab.cards import LATENT_KINDS, card_latent, read_card, sha256, write_card
from lab.noise import latents
from trainer.datasets import GaussianMixture, get_dataset
from trainer.onnx_export import PARITY_INPUTS, PARITY_SEED

IMAGE_TOLERANCE = 0.01  # max |fp16 - fp32| for images in [-1, 1]
MIXTURE_TOLERANCE = 0.1  # ... for 2-D points, in units of the mixture's std


def half_file(version: int) -> str:
    """The card-relative path of a version's float16 graph."""
    return f"{version}/model-fp16.onnx"


def half_precision(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph computing in float16, its float32 inputs and outputs kept (cast at the
    edges); ValueError for graphs with subgraphs, which this conversion does not reach."""
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    for initializer in graph.initializer:
        if initializer.data_type == TensorProto.FLOAT:
            half = numpy_helper.to_array(initializer).astype(np.float16)
            initializer.CopyFrom(numpy_helper.from_array(half, initializer.name))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ValueError(f"cannot convert a graph with control flow ({node.op_type})")
            if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                half = numpy_helper.to_array(attribute.t).astype(np.float16)
                attribute.t.CopyFrom(numpy_helper.from_array(half, attribute.t.name))
            if (
                node.op_type == "Cast"
                and attribute.name == "to"
                and attribute.i == TensorProto.FLOAT
            ):
                attribute.i = TensorProto.FLOAT16
    edges = {value.name: f"{value.name}/fp16" for value in [*graph.input, *graph.output]}
    for node in graph.node:
        node.input[:] = [edges.get(name, name) for name in node.input]
        node.output[:] = [edges.get(name, name) for name in node.output]
    casts_in = [
        helper.make_node("Cast", [v.name], [edges[v.name]], to=TensorProto.FLOAT16)
        for v in graph.input
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    ]
    casts_out = [
        helper.make_node("Cast", [edges[v.name]], [v.name], to=TensorProto.FLOAT)
        for v in graph.output
    ]
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # float32 annotations of intermediate tensors no longer hold
    onnx.checker.check_model(converted, full_check=True)
    return converted


def half_tolerance(dataset: str) -> float:
    """The largest |fp16 - fp32| of a sample kept as parity for a generator of `dataset`."""
    data = get_dataset(dataset)
    if isinstance(data, GaussianMixture):
        return MIXTURE_TOLERANCE * float(data.std)
    return IMAGE_TOLERANCE


def measure_half_parity(full: Path, half: Path, card: dict[str, Any]) -> float:
    """max |fp16 - fp32| over PARITY_INPUTS service latents of the gan `card` (its declared
    distribution, its input's name), both through onnxruntime's CPU provider (NaN counts as
    failing)."""
    z = latents(card_latent(card), PARITY_INPUTS, PARITY_SEED)
    outputs = []
    for path in (full, half):
        session = runtime.create_session(path, "cpu")
        rows = runtime.run_batched(session, card["input"]["name"], z, PARITY_INPUTS)
        outputs.append(rows.astype(np.float64))
    error = float(np.abs(outputs[0] - outputs[1]).max())
    return error if np.isfinite(error) else float("inf")


def half_version(model_dir: Path, card: dict[str, Any], version: dict[str, Any]) -> dict:
    """Write the float16 graph of one `version` entry of a gan `card` (in model_dir) and, when
    its parity is within half_tolerance, set version["fp16"]; otherwise remove the file and
    drop any earlier entry. Returns what was measured: file, max_abs_error, tolerance, kept."""
    relative = half_file(version["version"])
    path = model_dir / relative
    onnx.save(half_precision(onnx.load(model_dir / version["file"])), path)
    try:
        error = measure_half_parity(model_dir / version["file"], path, card)
    except BaseException:
        path.unlink()
        raise
    tolerance = half_tolerance(card["dataset"])
    kept = error <= tolerance
    if kept:
        parity = {"max_abs_error": error, "n_inputs": PARITY_INPUTS, "tolerance": tolerance}
        version["fp16"] = {"file": relative, "sha256": sha256(path), "parity": parity}
    else:
        path.unlink()
        version.pop("fp16", None)
    return {"file": relative, "max_abs_error": error, "tolerance": tolerance, "kept": kept}


def add_half(model_dir: Path) -> tuple[Path, list[dict]]:
    """half_version for every version of the gan card in model_dir; (the card's path, what was
    measured per version). ValueError when model_dir holds no gan card."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    if card is None or card.get("kind") not in LATENT_KINDS:
        raise ValueError(f"{model_dir} holds no gan or vae card")
    results = [half_version(model_dir, card, version) for version in card["versions"]]
    return write_card(model_dir, card), results
