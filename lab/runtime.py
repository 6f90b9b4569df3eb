"""onnxruntime sessions: the CUDA provider when it works, else the CPU provider, honestly reported.

onnxruntime-gpu lists CUDAExecutionProvider as available even where the CUDA libraries are
missing, then falls back to the CPU with loud log lines; only `session.get_providers()` says
what a session really uses, so that is what we report. onnxruntime's own lines are silenced
while a session is created, and the fallback is said once per process, in our words.
"""

import importlib.util
import logging
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_QUIET = 4  # onnxruntime logger severity: fatal only
_DEFAULT_SEVERITY = 2  # warnings and above


def positive_setting(name: str, default: int) -> int:
    """The positive integer in environment variable `name` (`default` when unset or empty);
    ValueError naming the variable otherwise, so that a bad value stops the worker at start."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)


# Rows per run() on the CPU provider (ORT_CPU_BATCH). A 4,096-row batch of the papers' 4 x 400
# MLP generator carries 6.5 MB of activations per layer, out of a core's cache; in 1,024-row
# pieces it ran 1.5x faster, the convolutional models no slower, and every bundled model gave
# the same bits (docs/performance.md). On CUDA a batch runs whole, up to MAX_BATCH rows.
CPU_BATCH = positive_setting("ORT_CPU_BATCH", 1024)


@cache
def preload_cuda_libraries() -> None:
    """Load the CUDA/cuDNN libraries of the pip `nvidia-*` wheels (the container's CUDA), once.

    Skipped where those wheels are absent (a host CUDA install, or no CUDA at all), since
    onnxruntime would only print a line per missing library.
    """
    if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def requested_providers(device: str) -> list[str]:
    """Providers to ask for, best first, for DEVICE = auto | cuda | cpu."""
    if device != "cpu" and CUDA in ort.get_available_providers():
        preload_cuda_libraries()
        return [CUDA, CPU]
    return [CPU]


@cache
def warn_cpu_fallback() -> None:
    """Warn, once per process, that CUDA was asked for but sessions run on the CPU provider:
    every session of a process falls back for the same reason, so one line says it all."""
    log.warning(
        "the CUDA execution provider failed to load (no GPU, or its CUDA/cuDNN libraries are "
        "missing); models run on the CPU provider. Set DEVICE=cpu to use the CPU without "
        "trying CUDA and without this warning"
    )


class RuntimeUnavailable(RuntimeError):
    """The requested device cannot be used (e.g. DEVICE=cuda on a machine without CUDA)."""


def create_session(path: Path, device: str, large_graph: bool = False) -> ort.InferenceSession:
    """Load one ONNX file for `device`; raise RuntimeUnavailable when DEVICE=cuda cannot be met.

    large_graph (a fused trajectory: thousands of nodes) skips onnxruntime's buffer-reuse
    planner, whose time grows with the square of the node count: 38 s to load digits-edm's
    6,531-node fused graph with it, 2.2 s without, at the same speed and a lower peak memory
    (the arena still recycles freed blocks at run time).
    """
    options = ort.SessionOptions()
    options.log_severity_level = _DEFAULT_SEVERITY
    if large_graph:
        options.enable_mem_reuse = False
        options.enable_mem_pattern = False
    threads = int(os.environ.get("ORT_INTRA_OP_THREADS", "1"))
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = requested_providers(device)
    # A failed CUDA provider load is logged at error level by onnxruntime itself, for every
    # session; we say it once per process, in our own words, below.
    ort.set_default_logger_severity(_QUIET)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    finally:
        ort.set_default_logger_severity(_DEFAULT_SEVERITY)
    used = session.get_providers()
    if device == "cuda" and CUDA not in used:
        raise RuntimeUnavailable("DEVICE=cuda but the CUDA execution provider failed to load")
    if CUDA in providers and CUDA not in used:
        warn_cpu_fallback()
        log.debug("%s: CUDA provider unavailable, running on the CPU provider", path)
    return session


def session_provider(session: ort.InferenceSession) -> str:
    """The provider that runs the session's nodes first: CUDAExecutionProvider or CPU..."""
    return session.get_providers()[0]


class InferenceFailed(RuntimeError):
    """onnxruntime failed while running (out of device memory, a device fault, ...)."""


def run_batched(
    session: ort.InferenceSession,
    input_name: str,
    inputs: np.ndarray,
    max_batch: int,
    output: str | None = None,
) -> np.ndarray:
    """Run `session` on `inputs` [N, ...] in batches of at most `max_batch` rows; concatenate
    the named `output` (the first output when None). See run_rows."""
    return run_rows(session, {input_name: inputs}, max_batch, output)


def run_rows(
    session: ort.InferenceSession,
    inputs: dict[str, np.ndarray],
    max_batch: int,
    output: str | None = None,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run `session` on named inputs that share their first axis [N, ...], in batches of at
    most `max_batch` rows (CPU_BATCH on the CPU provider); concatenate the named `output` (the
    first output when None). The rows are independent: the pieces never change the results.
    advance(rows), when given, is called after each run with the rows it computed (a job's
    progress; whatever it raises, e.g. a cancellation, stops the loop and propagates).

    Raises InferenceFailed for any onnxruntime error: the inputs were checked before, so such
    a failure is the runtime's (typically transient), not the client's.
    """
    rows = len(next(iter(inputs.values())))
    try:
        max_batch = piece_rows(session, max_batch)
    except Exception as error:  # onnxruntime's own exception types (Fail, RuntimeException, ...)
        raise InferenceFailed(f"{type(error).__name__}: {error}") from error
    outputs = []
    for start in range(0, rows, max_batch):
        piece = {name: array[start : start + max_batch] for name, array in inputs.items()}
        try:
            outputs.append(session.run([output] if output else None, piece)[0])
        except Exception as error:  # onnxruntime's own exception types
            raise InferenceFailed(f"{type(error).__name__}: {error}") from error
        if advance is not None:
            advance(len(outputs[-1]))
    return np.concatenate(outputs, axis=0)


def piece_rows(session: ort.InferenceSession, max_batch: int) -> int:
    """Rows per run of `session`: max_batch, capped at CPU_BATCH on the CPU provider."""
    return min(max_batch, CPU_BATCH) if session_provider(session) == CPU else max_batch


def session_device(session: ort.InferenceSession) -> str:
    """The OrtValue device of the provider running `session`: "cuda" or "cpu"."""
    return "cuda" if session_provider(session) == CUDA else "cpu"


def to_device(array: np.ndarray, device: str) -> ort.OrtValue:
    """An OrtValue holding a copy of `array` in the memory of `device` ("cuda" or "cpu")."""
    try:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), device, 0)
    except Exception as error:  # out of device memory, most likely
        raise InferenceFailed(f"{type(error).__name__}: {error}") from error


def run_bound(
    session: ort.InferenceSession,
    inputs: dict[str, "ort.OrtValue | np.ndarray"],
    output: str,
) -> ort.OrtValue:
    """One run with IO binding: OrtValue inputs are read where they are (on the session's device
    they are not copied), numpy inputs are copied in, and the named output is left in the
    device's memory as an OrtValue, so a loop can feed it back without a host round trip.

    Raises InferenceFailed for any onnxruntime error, as run_rows does.
    """
    try:
        binding = session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(output, session_device(session))
        session.run_with_iobinding(binding)
        return binding.get_outputs()[0]
    except Exception as error:  # onnxruntime's own exception types
        raise InferenceFailed(f"{type(error).__name__}: {error}") from error
