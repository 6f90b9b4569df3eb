"""Training across processes with torchrun: one global batch split across the ranks, gradients
averaged before every optimizer step, one writer.

Every rank runs the same seeded RNG streams as a single process would: it draws the whole
global batch (data, latents, and the per-sample noise of WGAN-GP, instance noise, DiffAugment
and the EDM loss) and keeps its own rows (`local_rows`). The ranks' rows together are the batch
one process draws, so the RNG states, and hence the checkpoint, are the same on every rank, and
a run matches one process up to the order of floating-point reductions (the means over shards,
then over ranks). Drawing the full batch on every rank costs little next to the networks here.

Gradients are averaged with one all-reduce per optimizer step (`average_gradients`), which is
what DistributedDataParallel does, done explicitly: a GAN step calls D several times, takes
input gradients with create_graph (WGAN-GP, R1) and unrolls D through functional_call, and
DDP's reducer hooks support none of these (autograd.grad bypasses them). NCCL carries the
all-reduce on GPUs, gloo on CPUs. Rank 0 evaluates, logs and writes checkpoints; every rank
holds identical weights, as every rank applies the same averaged gradients.
"""

import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from trainer.devices import Placement, make_deterministic, resolve_amp, resolve_device


def launched_by_torchrun() -> bool:
    """True when torchrun (or any launcher setting WORLD_SIZE and RANK) started this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def process_rank() -> tuple[int, int]:
    """(rank, world_size) of this process: (0, 1) unless a process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_placement(device: str = "auto", amp: str = "auto") -> Placement:
    """The Placement for this process: under torchrun, join the process group (NCCL on CUDA,
    gloo on the CPU) with the rank's device; else one process on `device`. ValueError for a
    device or amp mode that cannot run here."""
    local_rank = int(os.environ["LOCAL_RANK"]) if launched_by_torchrun() else None
    name = resolve_device(device, local_rank)
    use_amp = resolve_amp(amp, name)
    make_deterministic(name)
    if local_rank is not None and not dist.is_initialized():
        if name.startswith("cuda"):
            torch.cuda.set_device(name)
        dist.init_process_group("nccl" if name.startswith("cuda") else "gloo")
    rank, world_size = process_rank()
    return Placement(torch.device(name), use_amp, rank, world_size)


def finish() -> None:
    """Wait until every rank has finished training (a no-op for one process)."""
    if process_rank()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if this process joined one, once every rank is here: a rank
    that tears gloo down while another still talks to it can abort the other ("terminate
    called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def collective_device() -> str:
    """Where a collective's tensors live: this rank's GPU under NCCL, the CPU under gloo."""
    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def local_batch_size(batch_size: int, world_size: int, pack: int = 1) -> int:
    """Rows per rank of a global batch; ValueError unless it splits into whole shards (of
    whole packs, for a packed D)."""
    if batch_size % (world_size * pack):
        packs = f" x pack {pack}" if pack > 1 else ""
        raise ValueError(
            f"batch_size {batch_size} does not split across {world_size} processes{packs}; "
            f"use a multiple of {world_size * pack}"
        )
    return batch_size // world_size


def check_shards(config: Any, world_size: int) -> int:
    """A family's config (its batch_size, and pack when D packs samples) split across
    `world_size` processes: the rows per rank; ValueError when the batch does not split."""
    in_batch = getattr(config, "pack_mode", "in-batch") == "in-batch"  # "batches": any batch
    pack = config.pack if in_batch and "pack" in getattr(config, "mitigations", ()) else 1
    return local_batch_size(config.batch_size, world_size, pack)


def local_rows(draw: Callable[[int], Any], rows: int) -> Any:
    """This rank's `rows` rows of draw(rows * world_size) (a tensor, or a tuple of tensors
    sharing their rows): the same RNG stream on every rank, each keeping its shard.
    draw(rows) itself for one process (the single-process stream)."""
    rank, world_size = process_rank()
    if world_size == 1:
        return draw(rows)
    drawn, shard = draw(rows * world_size), slice(rank * rows, (rank + 1) * rows)
    return tuple(part[shard] for part in drawn) if isinstance(drawn, tuple) else drawn[shard]


def average_in_place(tensors: list[Tensor]) -> None:
    """Each tensor <- its mean over the ranks, with one all-reduce (a no-op for one process or
    no tensors; every rank passes the same shapes in the same order)."""
    rank, world_size = process_rank()
    if world_size == 1 or not tensors:
        return
    flat = torch.cat([tensor.reshape(-1) for tensor in tensors])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Each parameter's .grad <- its mean over the ranks (what DDP's reducer does).
    Parameters without a gradient are skipped on every rank alike (same graph)."""
    average_in_place([p.grad for p in parameters if p.grad is not None])


def average_buffers(*modules: nn.Module) -> None:
    """Each floating buffer (batch norm's running mean and variance) <- its mean over the
    ranks, so every rank, and so the checkpoint rank 0 writes, holds the same statistics. Each
    rank normalises with its own shard's batch statistics in between (docs/trainer-scaling.md)."""
    buffers = [b for module in modules for b in module.buffers() if b.is_floating_point()]
    average_in_place(buffers)


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """The ranks' mean of each value (the losses of equal shards average to the global
    batch's); `values` itself for one process."""
    rank, world_size = process_rank()
    if world_size == 1:
        return values
    keys = sorted(values)
    stacked = torch.tensor([values[key] for key in keys], dtype=torch.float64)
    stacked = stacked.to(collective_device())
    dist.all_reduce(stacked)
    return dict(zip(keys, (stacked / world_size).tolist(), strict=True))


def check_same_start(step: int) -> None:
    """ValueError on every rank unless all ranks resumed at the same `step` (a run dir that
    only some nodes see starts the others from scratch); a no-op for one process."""
    rank, world_size = process_rank()
    if world_size == 1:
        return
    steps = torch.tensor([step, -step], dtype=torch.int64, device=collective_device())
    dist.all_reduce(steps, op=dist.ReduceOp.MAX)
    latest, earliest = int(steps[0]), -int(steps[1])
    if latest != earliest:
        raise ValueError(
            f"the ranks resumed at different steps ({earliest} to {latest}): the run dir must be "
            "on storage that every node shares"
        )


def check_world_size(saved: int, current: int) -> None:
    """ValueError when a checkpoint written by `saved` processes would resume with `current`."""
    if saved != current:
        raise ValueError(
            f"cannot resume: the checkpoint was written by a run of {saved} process(es), this "
            f"one has {current}; the shard each process sees (and so batch statistics and the "
            f"order of reductions) would change. Resume with --nproc_per_node x nodes = {saved}, "
            "or start a new run dir"
        )
