"""Run by tests/trainer/test_distributed.py under torchrun: each rank trains a tiny DCGAN (batch
norm in G) for a few steps and saves what it holds, then the ranks disagree about where they
resume.

    torchrun --standalone --nproc_per_node 2 tests/trainer/torchrun_ranks.py OUT_DIR

OUT_DIR/rank<R>.pt: rank R's generator and discriminator state_dicts (weights and batch norm
buffers); OUT_DIR/rank<R>.txt: the error check_same_start raised on rank R.
"""

import sys
from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.distributed import check_same_start, init_placement, shutdown
from trainer.training_loop import build

TINY_DCGAN = TrainConfig(
    dataset="stacked-digits", arch="dcgan", latent_dim=8, conv_width=8, batch_size=16, steps=3
)


def main(out_dir: Path) -> None:
    placement = init_placement("cpu", "off")
    try:
        state = build(TINY_DCGAN, placement)
        for _ in range(TINY_DCGAN.steps):
            state.train_step()
        networks = {"generator": state.generator, "discriminator": state.discriminator}
        held = {name: network.state_dict() for name, network in networks.items()}
        torch.save(held, out_dir / f"rank{placement.rank}.pt")
        try:
            check_same_start(10 * placement.rank)
        except ValueError as error:
            (out_dir / f"rank{placement.rank}.txt").write_text(str(error))
    finally:
        shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
