"""What EDM's raw networks F(c_in * x, c_noise) share: the noise-level embedding, which also
takes a class-conditional network's labels. The networks (edm_mlp.py, edm_unet.py) register in
SCORE_NETWORKS (registry.py); EDM's preconditioning (trainer.edm.precond) wraps them into a
denoiser D(x, sigma), or D(x, sigma, labels).
"""

import math

import torch
from torch import Tensor, nn


class NoiseEmbedding(nn.Module):
    """c_noise [batch] -> [batch, width]: sin/cos of c_noise at geometric frequencies, then a
    two-layer SiLU MLP (the "positional" embedding of Song et al. 2021 / EDM's DDPM++).

    c_noise = ln(sigma) / 4 spans about [-1.6, 1.1] for sigma in [0.002, 80], so frequencies
    from 1 to max_frequency cover that range without aliasing.

    With `classes` K > 0, labels [batch] int64 in 0..K-1 condition it: a learned vector per
    class is added to the sin/cos features before the MLP, as EDM's networks add map_label of
    the class to their noise embedding (Karras et al. 2022, training/networks.py). K = 0 builds
    and computes exactly the unconditional embedding.
    """

    def __init__(
        self, width: int, frequencies: int = 16, max_frequency: float = 100.0, classes: int = 0
    ):
        super().__init__()
        exponents = torch.arange(frequencies, dtype=torch.float32) / max(frequencies - 1, 1)
        self.register_buffer("frequencies", max_frequency**exponents, persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * frequencies, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.label = nn.Embedding(classes, 2 * frequencies) if classes else None

    def forward(self, c_noise: Tensor, labels: Tensor | None = None) -> Tensor:
        angles = c_noise[:, None] * self.frequencies[None, :] * math.pi  # [batch, frequencies]
        features = torch.cat([angles.sin(), angles.cos()], dim=1)
        if self.label is not None:
            features = features + self.label(labels)
        return self.mlp(features)
