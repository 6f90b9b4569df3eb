"""The fused trajectory: a whole fixed-step sampler as one ONNX graph, built from the denoiser's.

    python -m trainer fuse models/grid25-edm            # the card's default steps and sampler

The service integrates a score model step by step: numpy keeps the state x and calls the
denoiser D(x, sigma) once per network evaluation. The fused graph does the same integration
inside onnxruntime: noise [batch, *sample_shape] in, samples out, one run() per batch, so the
state never leaves the device between steps (on a GPU: no host round trip per step).

It is built with onnx alone from the exported denoiser file (the torch network is not needed):
the denoiser's nodes are copied once per network evaluation with renamed intermediate tensors,
and every copy reads the same initializers, so the weights are stored once. The arithmetic is
lab.samplers.sample's, in the same order and in float64 like it (the state is float64, cast
to float32 for each denoiser call, as denoise_at does), so both paths give the same samples to
the last bits; the card records the measured difference. Only churn-free Euler and Heun are
fused (churn draws noise between steps from the request's generator).

The step graphs serve every other request: one Euler step and one Heun step as graphs with the
time steps and the churn noise as inputs (step_graph), so the service's loop keeps the state
in device memory and only the step's numbers go in (lab.sampling.stepped_score_samples).

A class-conditional denoiser D(x, sigma, labels) makes both kinds of graph take the labels
[batch] int64 too (lab.sampling.GRAPH_LABELS), one class per row for the whole trajectory,
which every copy of the denoiser reads; their parity is measured with labels of every class.
"""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lab import runtime
from lab.cards import read_card, sha256, write_card
from lab.samplers import (
    NO_CHURN,
    SAMPLERS,
    Churn,
    check_sampler,
    network_evaluations,
    time_steps,
)
from lab.sampling import (
    DEFAULT_MAX_BATCH,
    GRAPH_LABELS,
    STEP_NOISE,
    STEP_OUTPUT,
    STEP_SCALARS,
    STEP_STATE,
    ScoreSpec,
    fused_score_samples,
    onnx_denoiser,
    score_samples,
    stepped_score_samples,
)
from trainer.conditioning import every_class
from trainer.diagnose import score_diagnostics
from trainer.onnx_export import MAX_IR_VERSION

NOISE_NAME, SAMPLES_NAME = "noise", "samples"
PARITY_SAMPLES, PARITY_SEED = 1024, 1
PARITY_TOLERANCE = 1e-5  # max |fused - step by step| of the samples, in sample units
STEP_CHURN = 10.0  # the S_churn of the step graphs' parity request with churn
# max |step graphs - numpy sampler| of the samples. Looser than the fused graph's: the step
# graph is a different graph around the same denoiser, onnxruntime optimises its convolutions
# differently (float32 differences of ~1e-7 per evaluation), and churn re-noises the state
# between steps; 1.7e-5 was measured for stacked-digits-edm, far below one 8-bit pixel level.
STEP_PARITY_TOLERANCE = 1e-4


class Builder:
    """Accumulates the fused graph's nodes and constants; tensor names are unique per call."""

    def __init__(self, denoiser: onnx.ModelProto) -> None:
        self.denoiser = denoiser.graph
        self.shared = {init.name for init in self.denoiser.initializer}
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"fused/{stem}_{self.count}"

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def constant(self, value: float | np.ndarray, dtype: type = np.float64) -> str:
        name = self.name("const")
        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def denoise(self, x: str, sigma: float | str, batch: str, call: int) -> str:
        """D(x, sigma) as float64: x (float64) cast to float32, sigma (a number, or the name of
        a float32 [1] tensor) expanded to a float32 [batch] vector, a conditional denoiser's
        labels the graph's GRAPH_LABELS input; the denoiser's nodes copied with their own
        tensor names."""
        x_input, sigma_input, *label_input = (value.name for value in self.denoiser.input)
        sigma = sigma if isinstance(sigma, str) else self.constant(sigma, np.float32)
        sigmas = self.node("Expand", [sigma, batch])
        renamed = {x_input: self.node("Cast", [x], to=TensorProto.FLOAT), sigma_input: sigmas}
        renamed |= {name: GRAPH_LABELS for name in label_input}

        def rename(tensor: str) -> str:
            if tensor == "" or tensor in self.shared:  # optional input, or a shared weight
                return tensor
            return renamed.setdefault(tensor, f"call{call}/{tensor}")

        for original in self.denoiser.node:
            if any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                for a in original.attribute
            ):
                raise ValueError(f"cannot fuse a denoiser with control flow ({original.op_type})")
            copy = onnx.NodeProto()
            copy.CopyFrom(original)
            copy.ClearField("metadata_props")  # the exporter's stack traces, per node
            copy.doc_string = ""
            copy.name = f"call{call}/{original.name}"
            copy.input[:] = [rename(t) for t in original.input]
            copy.output[:] = [rename(t) for t in original.output]
            self.nodes.append(copy)
        output = rename(self.denoiser.output[0].name)
        return self.node("Cast", [output], to=TensorProto.DOUBLE)


def fuse_trajectory(
    denoiser: onnx.ModelProto, t: np.ndarray, sampler: str, data_scale: float
) -> onnx.ModelProto:
    """The graph noise [batch, *shape] float32 (and a conditional denoiser's labels [batch]
    int64) -> samples [batch, *shape] float32 of lab.sampling.score_samples without churn:
    x = noise * t[0], then one Euler or Heun step per interval of the time steps t (ending at
    0), then x / data_scale."""
    check_sampler(sampler)
    build = Builder(denoiser)
    x_info = denoiser.graph.input[0]
    batch = build.node("Shape", [NOISE_NAME], start=0, end=1)  # [1] int64
    x = build.node(
        "Mul", [build.node("Cast", [NOISE_NAME], to=TensorProto.DOUBLE), build.constant(t[0])]
    )
    calls = 0
    for t_cur, t_next in zip(t[:-1].tolist(), t[1:].tolist(), strict=True):
        denoised = build.denoise(x, t_cur, batch, calls)
        calls += 1
        d_cur = build.node("Div", [build.node("Sub", [x, denoised]), build.constant(t_cur)])
        step = build.constant(t_next - t_cur)
        x_next = build.node("Add", [x, build.node("Mul", [step, d_cur])])
        if sampler == "heun" and t_next > 0:
            denoised = build.denoise(x_next, t_next, batch, calls)
            calls += 1
            difference = build.node("Sub", [x_next, denoised])
            d_prime = build.node("Div", [difference, build.constant(t_next)])
            half = build.constant(0.5)
            mean = build.node(
                "Add",
                [build.node("Mul", [half, d_cur]), build.node("Mul", [half, d_prime])],
            )
            x_next = build.node("Add", [x, build.node("Mul", [step, mean])])
        x = x_next
    scaled = build.node("Div", [x, build.constant(data_scale)])
    build.nodes.append(helper.make_node("Cast", [scaled], [SAMPLES_NAME], to=TensorProto.FLOAT))
    shape = [d.dim_param or d.dim_value for d in x_info.type.tensor_type.shape.dim]
    graph = helper.make_graph(
        build.nodes,
        "fused_trajectory",
        [helper.make_tensor_value_info(NOISE_NAME, TensorProto.FLOAT, shape), *labels(denoiser)],
        [helper.make_tensor_value_info(SAMPLES_NAME, TensorProto.FLOAT, shape)],
        initializer=[*denoiser.graph.initializer, *build.constants],
    )
    return finish(denoiser, graph)


def step_graph(denoiser: onnx.ModelProto, sampler: str) -> onnx.ModelProto:
    """One step of lab.samplers.sample as a graph, for any time steps and churn: inputs
    x [batch, *shape] float64 (the state), noise [batch, *shape] float32 (the churn noise times
    S_noise; zeros without churn), noise_scale [1] float32 (sqrt(t_hat^2 - t_cur^2)), t_hat,
    t_next and step = t_next - t_hat [1] float64 (and a conditional denoiser's labels [batch]
    int64); output x_next [batch, *shape] float64.

    "euler" is Algorithm 1's Euler step (one network evaluation), "heun" adds the second-order
    correction (two; only for t_next > 0: the last step of a Heun trajectory is an Euler
    step). The arithmetic is sample's, in the same order and precision, so a trajectory of
    these steps gives sample's numbers (lab.sampling.stepped_score_samples)."""
    check_sampler(sampler)
    build = Builder(denoiser)
    batch = build.node("Shape", [STEP_STATE], start=0, end=1)
    churned = build.node("Mul", [STEP_SCALARS[0], STEP_NOISE])  # float32, as numpy computes it
    x = build.node("Add", [STEP_STATE, build.node("Cast", [churned], to=TensorProto.DOUBLE)])
    t_hat, t_next, step = STEP_SCALARS[1:]
    denoised = build.denoise(x, build.node("Cast", [t_hat], to=TensorProto.FLOAT), batch, 0)
    d_cur = build.node("Div", [build.node("Sub", [x, denoised]), t_hat])
    x_next = build.node("Add", [x, build.node("Mul", [step, d_cur])])
    if sampler == "heun":
        sigma = build.node("Cast", [t_next], to=TensorProto.FLOAT)
        denoised = build.denoise(x_next, sigma, batch, 1)
        d_prime = build.node("Div", [build.node("Sub", [x_next, denoised]), t_next])
        half = build.constant(0.5)
        mean = build.node(
            "Add", [build.node("Mul", [half, d_cur]), build.node("Mul", [half, d_prime])]
        )
        x_next = build.node("Add", [x, build.node("Mul", [step, mean])])
    build.nodes.append(helper.make_node("Identity", [x_next], [STEP_OUTPUT]))
    shape = [d.dim_param or d.dim_value for d in denoiser.graph.input[0].type.tensor_type.shape.dim]
    inputs = [
        helper.make_tensor_value_info(STEP_STATE, TensorProto.DOUBLE, shape),
        helper.make_tensor_value_info(STEP_NOISE, TensorProto.FLOAT, shape),
        helper.make_tensor_value_info(STEP_SCALARS[0], TensorProto.FLOAT, [1]),
        *(
            helper.make_tensor_value_info(name, TensorProto.DOUBLE, [1])
            for name in STEP_SCALARS[1:]
        ),
        *labels(denoiser),
    ]
    return finish(
        denoiser,
        helper.make_graph(
            build.nodes,
            f"{sampler}_step",
            inputs,
            [helper.make_tensor_value_info(STEP_OUTPUT, TensorProto.DOUBLE, shape)],
            initializer=[*denoiser.graph.initializer, *build.constants],
        ),
    )


def labels(denoiser: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The labels input [batch] int64 (GRAPH_LABELS) of a graph built from a conditional
    denoiser (its third input); none for an unconditional one."""
    return [
        helper.make_tensor_value_info(
            GRAPH_LABELS, TensorProto.INT64, [d.dim_param or d.dim_value for d in shape.dim]
        )
        for shape in (value.type.tensor_type.shape for value in denoiser.graph.input[2:])
    ]


def finish(denoiser: onnx.ModelProto, graph: onnx.GraphProto) -> onnx.ModelProto:
    """The checked model of a graph built from the denoiser's: its opsets, functions and an IR
    version the service's onnxruntime loads."""
    model = helper.make_model(
        graph, opset_imports=denoiser.opset_import, producer_name="collapse-lab fuse"
    )
    model.functions.extend(denoiser.functions)
    model.ir_version = min(denoiser.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def fused_file(version: int, sampler: str, steps: int) -> str:
    """The card-relative path of a version's fused graph."""
    return f"{version}/fused-{sampler}-{steps}.onnx"


def parity_labels(card: dict) -> np.ndarray | None:
    """The labels of the parity checks' PARITY_SAMPLES samples: every class in turn for a
    conditional card; None for an unconditional one."""
    return every_class(PARITY_SAMPLES, card.get("conditional", {}).get("classes", 0))


def measure_parity(card: dict, denoiser_path: Path, fused_path: Path, steps: int, sampler: str):
    """max |fused - step by step| on PARITY_SAMPLES samples of seed PARITY_SEED (of every
    class, for a conditional card)."""
    max_batch, labels = DEFAULT_MAX_BATCH, parity_labels(card)
    spec = ScoreSpec.from_card(card)
    session = runtime.create_session(denoiser_path, "cpu")
    denoise = onnx_denoiser(session, card, max_batch, labels=labels)
    stepwise = score_samples(denoise, spec, PARITY_SAMPLES, PARITY_SEED, steps, sampler)
    session = runtime.create_session(fused_path, "cpu", large_graph=True)
    args = (spec, PARITY_SAMPLES, PARITY_SEED, max_batch)
    fused = fused_score_samples(session, *args, labels=labels)
    error = np.abs(stepwise.astype(np.float64) - fused.astype(np.float64))
    return {"max_abs_error": float(error.max()), "n": PARITY_SAMPLES, "seed": PARITY_SEED}


def fuse_version(
    model_dir: Path, card: dict, version: dict, steps: int, sampler: str
) -> tuple[Path, Path | None]:
    """Write the fused graph of one `version` entry of `card` (in model_dir) for steps and
    sampler, check it against the step-by-step sampler and set version["fused"]; returns (the
    file written, the file of the fused graph it replaces or None).

    RuntimeError (the file removed) when the samples differ by more than PARITY_TOLERANCE.
    """
    spec = ScoreSpec.from_card(card)
    t = time_steps(steps, spec.sigma_min, spec.sigma_max, spec.rho)
    denoiser_path = model_dir / version["file"]
    relative = fused_file(version["version"], sampler, steps)
    onnx.save(
        fuse_trajectory(onnx.load(denoiser_path), t, sampler, spec.data_scale), model_dir / relative
    )
    try:
        parity = measure_parity(card, denoiser_path, model_dir / relative, steps, sampler)
        if not parity["max_abs_error"] <= PARITY_TOLERANCE:
            raise RuntimeError(f"fused trajectory parity failed: {parity}")
    except BaseException:
        (model_dir / relative).unlink()
        raise
    old = version.get("fused", {}).get("file")
    version["fused"] = {
        "file": relative,
        "sha256": sha256(model_dir / relative),
        "sampler": sampler,
        "steps": steps,
        "network_evaluations": network_evaluations(steps, sampler),
        "parity": parity,
    }
    return model_dir / relative, (model_dir / old if old and old != relative else None)


def step_files(version: int) -> dict[str, str]:
    """The card-relative paths of a version's step graphs, by sampler."""
    return {sampler: f"{version}/step-{sampler}.onnx" for sampler in SAMPLERS}


def measure_step_parity(card: dict, model_dir: Path, version: dict, files: dict[str, str]):
    """max |step graphs - numpy sampler| over PARITY_SAMPLES samples of seed PARITY_SEED (of
    every class, for a conditional card), for the card's default request, Euler at half its
    steps, and Heun with churn (STEP_CHURN)."""
    max_batch, labels = DEFAULT_MAX_BATCH, parity_labels(card)
    spec, schedule = ScoreSpec.from_card(card), card["sampler"]
    session = runtime.create_session(model_dir / version["file"], "cpu")
    denoise = onnx_denoiser(session, card, max_batch, labels=labels)
    steppers = {s: runtime.create_session(model_dir / f, "cpu") for s, f in files.items()}
    requests = [
        (schedule["steps"], schedule["name"], NO_CHURN),
        (max(schedule["steps"] // 2, 1), "euler", NO_CHURN),
        (schedule["steps"], "heun", Churn(STEP_CHURN)),
    ]
    error = 0.0
    for steps, sampler, churn in requests:
        args = (spec, PARITY_SAMPLES, PARITY_SEED, steps, sampler, churn)
        expected = score_samples(denoise, *args)
        actual = stepped_score_samples(steppers, *args, max_batch=max_batch, labels=labels)
        error = max(error, float(np.abs(expected.astype(np.float64) - actual).max()))
    return {
        "max_abs_error": error,
        "n": PARITY_SAMPLES,
        "seed": PARITY_SEED,
        "requests": [
            {"steps": steps, "sampler": sampler, "churn": churn.s_churn}
            for steps, sampler, churn in requests
        ],
    }


def step_version(model_dir: Path, card: dict, version: dict) -> list[Path]:
    """Write the step graphs of one `version` entry of `card` (in model_dir), check them against
    the numpy sampler and set version["step_graphs"]; the files written.

    RuntimeError (the files removed) when the samples differ by more than STEP_PARITY_TOLERANCE.
    """
    denoiser = onnx.load(model_dir / version["file"])
    files = step_files(version["version"])
    written = []
    try:
        for sampler, relative in files.items():
            onnx.save(step_graph(denoiser, sampler), model_dir / relative)
            written.append(model_dir / relative)
        parity = measure_step_parity(card, model_dir, version, files)
        if not parity["max_abs_error"] <= STEP_PARITY_TOLERANCE:
            raise RuntimeError(f"step graph parity failed: {parity}")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    version["step_graphs"] = {
        **{s: {"file": f, "sha256": sha256(model_dir / f)} for s, f in files.items()},
        "parity": parity,
    }
    return written


def add_fused(model_dir: Path, steps: int | None = None, sampler: str | None = None) -> Path:
    """Write the fused graph of every version of the score model in model_dir (the card's
    default steps and sampler unless given) and its step graphs, list them in the card and,
    when the fused graph serves the card's default request, measure the card's diagnostics
    again through it (what the service now returns; trainer.diagnose.score_diagnostics);
    the card's path.

    RuntimeError (nothing left behind) when the fused or stepped samples differ from the
    numpy sampler's by more than PARITY_TOLERANCE or STEP_PARITY_TOLERANCE.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    if card is None or card.get("kind") != "score":
        raise ValueError(f"{model_dir} holds no score model card")
    steps = steps or card["sampler"]["steps"]
    sampler = sampler or card["sampler"]["name"]
    written, replaced = [], []
    try:
        for version in card["versions"]:
            path, old = fuse_version(model_dir, card, version, steps, sampler)
            written.append(path)
            replaced += [old] if old else []
            written += step_version(model_dir, card, version)
        if "diagnostics" in card:
            newest = max(card["versions"], key=lambda v: v["version"])
            card["diagnostics"] = score_diagnostics(card, model_dir, newest, model_dir.parent)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    path = write_card(model_dir, card)
    for old in replaced:
        old.unlink(missing_ok=True)
    return path
