"""What EDM's raw networks F(c_in * x, c_noise) share: the noise-level embedding. The networks
(edm_mlp.py, edm_unet.py) register in SCORE_NETWORKS (registry.py); EDM's preconditioning
(trainer.edm.precond) wraps them into a denoiser D(x, sigma).
"""

import math

import torch
from torch import Tensor, nn


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
