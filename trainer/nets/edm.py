"""Score-model networks by short name: the raw networks F(c_in * x, c_noise) that EDM's
preconditioning (trainer.edm.precond) wraps into a denoiser D(x, sigma).

Each entry builds one nn.Module from plain ints (the card's `architecture.args`), taking
x_in [batch, *sample_shape] and c_noise [batch] and returning F [batch, *sample_shape].
"""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainer.registry import Registry

SCORE_NETWORKS: Registry[Callable[..., nn.Module]] = Registry("score network")


class NoiseEmbedding(nn.Module):
    """c_noise [batch] -> [batch, width]: sin/cos of c_noise at geometric frequencies, then a
    two-layer SiLU MLP (the "positional" embedding of Song et al. 2021 / EDM's DDPM++).

    c_noise = ln(sigma) / 4 spans about [-1.6, 1.1] for sigma in [0.002, 80], so frequencies
    from 1 to max_frequency cover that range without aliasing.
    """

    def __init__(self, width: int, frequencies: int = 16, max_frequency: float = 100.0):
        super().__init__()
        exponents = torch.arange(frequencies, dtype=torch.float32) / max(frequencies - 1, 1)
        self.register_buffer("frequencies", max_frequency**exponents, persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * frequencies, width), nn.SiLU(), nn.Linear(width, width)
        )

    def forward(self, c_noise: Tensor) -> Tensor:
        angles = c_noise[:, None] * self.frequencies[None, :] * math.pi  # [batch, frequencies]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


from trainer.nets import edm_mlp, edm_unet  # noqa: E402,F401  (registers "mlp" and "unet")
