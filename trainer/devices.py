"""Where a run computes: the device, mixed precision, and the process's place among torchrun's
ranks (`Placement`), and what the training steps need of them.

The device is a run-time choice, not part of the recipe: it never enters config.json or the
check that refuses changed recipes on resume, and a checkpoint (loaded with
map_location="cpu") resumes on either device. Initialisation, data, latents and noise come from
CPU torch.Generators and move to the device afterwards, so the same seed draws the same numbers
on every device; only the arithmetic differs (docs/trainer-scaling.md).

Mixed precision (`amp`) is bfloat16 autocast around a training step's network forward passes
(matrix products and convolutions in bfloat16, with float32 weights and optimizer state). It
needs no loss scaling: bfloat16 has float32's exponent range. What stays float32: every
network's output (`float32_outputs` casts it back, so losses are float32), the penalties that
differentiate twice (WGAN-GP's gradient penalty and R1 run under `full_precision`), the EDM
preconditioning and loss weights (elementwise float32 ops, which autocast leaves alone), the
EMA, the optimizers and every evaluation (no autocast outside the training step).
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

AMP_MODES = ("auto", "on", "off")
AMP_DTYPE = torch.bfloat16


@dataclass(frozen=True)
class Placement:
    """A run's device, mixed precision and rank (0..world_size-1; 1 without torchrun)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False  # bfloat16 autocast around the training step's forward passes
    rank: int = 0
    world_size: int = 1

    @property
    def writer(self) -> bool:
        """True for the one process that writes the run dir (rank 0)."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """The training step's autocast region (a no-op context when amp is off)."""
        return torch.autocast(self.device.type, dtype=AMP_DTYPE, enabled=self.amp)


def cuda_devices() -> int:
    """How many CUDA devices torch sees (0 on a CPU build or a machine without a GPU)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: str, local_rank: int | None = None, gpus: int | None = None) -> str:
    """ "auto" | "cpu" | "cuda" | "cuda:N" -> the device string this process uses.

    "auto" is "cuda" when a GPU is visible, else "cpu". Under torchrun (`local_rank` given) a
    CUDA device is this rank's own, cuda:LOCAL_RANK. ValueError, saying what to pass instead,
    for an unknown name, CUDA without a GPU, or a GPU index that does not exist.
    """
    gpus = cuda_devices() if gpus is None else gpus
    if name == "auto":
        name = "cuda" if gpus > 0 else "cpu"
    if name == "cpu":
        return "cpu"
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit() or name.endswith(":")):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")
    if gpus == 0:
        raise ValueError(f"device {name!r}: torch sees no CUDA device here; use --device cpu")
    if local_rank is not None:
        if index:
            raise ValueError(
                f"device {name!r}: under torchrun each rank uses cuda:LOCAL_RANK; "
                "pass --device cuda (or auto)"
            )
        index = str(local_rank)
    number = int(index or 0)
    if number >= gpus:
        raise ValueError(f"device cuda:{number} does not exist: torch sees {gpus} CUDA device(s)")
    return f"cuda:{number}"


def resolve_amp(mode: str, device: str, bf16_supported: bool | None = None) -> bool:
    """--amp auto|on|off on `device` -> whether the training step runs under bfloat16 autocast.

    auto: on for CUDA devices that support bfloat16 (Ampere and later), off elsewhere (CPU runs
    stay float32). on: also on the CPU (for checks), ValueError on a GPU without bfloat16.
    off: never.
    """
    if mode not in AMP_MODES:
        raise ValueError(f"unknown amp mode {mode!r}; choose from {', '.join(AMP_MODES)}")
    cuda = device.startswith("cuda")
    if bf16_supported is None:
        bf16_supported = not cuda or torch.cuda.is_bf16_supported()
    if mode == "off" or (mode == "auto" and not cuda):
        return False
    if not bf16_supported:
        if mode == "on":
            raise ValueError(f"--amp on: {device} has no bfloat16 support; use --amp off")
        return False
    return True


def make_deterministic(device: str) -> None:
    """Make repeated runs on one CUDA device bit-identical: deterministic cuBLAS workspaces and
    cuDNN kernels, no autotuning; and float32 kept float32 (no TF32 in matrix products and
    convolutions; autocast is the one way to lower precision). A process-wide setting; call
    before the first CUDA op."""
    if not device.startswith("cuda"):
        return  # the CPU kernels used here are deterministic already
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False  # on by default for convolutions
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def cast_to_float32(module: nn.Module, inputs: tuple, output: object) -> object:
    """Forward hook: a floating tensor output becomes float32 (others pass through)."""
    if isinstance(output, Tensor) and output.is_floating_point():
        return output.float()
    return output


def float32_outputs(*modules: nn.Module) -> None:
    """Cast each module's forward output to float32, so what autocast computed in bfloat16
    reaches the losses as float32. The hook adds no parameters: state_dict keys are unchanged."""
    for module in modules:
        module.register_forward_hook(cast_to_float32)


@contextlib.contextmanager
def full_precision(tensor: Tensor) -> Iterator[None]:
    """A float32 region inside an autocast one, on `tensor`'s device: for what differentiates
    twice (gradient penalties), where bfloat16's 8-bit mantissa would swamp the gradient norm."""
    with torch.autocast(tensor.device.type, enabled=False):
        yield
