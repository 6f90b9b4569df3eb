"""Residual MLP with a noise-level embedding: EDM's raw network F for 2-D points.

The mixtures' modes are very sharp (ring8: std 0.01 against a radius of 1), and near a mode F
must change over a few mode widths; an MLP learns such high frequencies slowly (spectral bias).
An optional positional encoding of the input, sin/cos(2^k pi x_in) for k < input_frequencies
(NeRF, Mildenhall et al. 2020), hands it those frequencies directly.

In high dimension the data's per-axis spread can differ from what EDM's preconditioning assumes
(veegan1200: unit noise on 700 axes, none on 500, one shift along all 1200), and the ideal
denoiser then shrinks each axis by its own noise-dependent factor: a full-rank map that a narrow
MLP cannot carry. The optional `axis_gain` adds that path directly, g(c_noise) * x_in with one
gain per axis read from the noise embedding (initialised to 0).
"""

import math

import torch
from torch import Tensor, nn

from trainer.nets.edm import NoiseEmbedding
from trainer.nets.registry import SCORE_NETWORKS


class ResidualBlock(nn.Module):
    """h + Linear(SiLU(Linear(SiLU(LayerNorm(h)) + emb))): [batch, width] -> [batch, width]."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.first = nn.Linear(width, width)
        self.embedding = nn.Linear(width, width)
        self.second = nn.Linear(width, width)
        self.activation = nn.SiLU()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        inner = self.first(self.activation(self.norm(h))) + self.embedding(emb)
        return h + self.second(self.activation(inner))


class ScoreMLP(nn.Module):
    """F(x_in, c_noise[, labels]): x_in [batch, data_dim], c_noise [batch] (and with `classes`
    K > 0, labels [batch] int64 in 0..K-1) -> [batch, data_dim].

    Input projection, `depth` residual blocks of `width` units each conditioned on the noise
    embedding (and the class: NoiseEmbedding), LayerNorm + SiLU + linear output initialised to
    0 (so D starts as c_skip * x); with axis_gain 1, plus a per-axis gain of the noise
    embedding times x_in (also initialised to 0).
    """

    def __init__(
        self,
        data_dim: int = 2,
        width: int = 256,
        depth: int = 4,
        input_frequencies: int = 0,
        classes: int = 0,
        axis_gain: int = 0,
    ):
        super().__init__()
        self.embedding = NoiseEmbedding(width, classes=classes)
        scales = math.pi * 2.0 ** torch.arange(input_frequencies, dtype=torch.float32)
        self.register_buffer("input_scales", scales, persistent=False)
        self.input = nn.Linear(data_dim * (1 + 2 * input_frequencies), width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, data_dim))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.gain = nn.Linear(width, data_dim) if axis_gain else None
        if self.gain is not None:
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.gain.bias)

    def encode(self, x_in: Tensor) -> Tensor:
        """[batch, d] -> [batch, d (1 + 2 F)]: x_in, then sin and cos of x_in * 2^k pi."""
        if len(self.input_scales) == 0:
            return x_in
        angles = (x_in[:, :, None] * self.input_scales).flatten(1)  # [batch, d * F]
        return torch.cat([x_in, angles.sin(), angles.cos()], dim=1)

    def forward(self, x_in: Tensor, c_noise: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.embedding(c_noise, labels)  # [batch, width]
        h = self.input(self.encode(x_in))
        for block in self.blocks:
            h = block(h, emb)
        if self.gain is None:
            return self.head(h)
        return self.head(h) + self.gain(emb) * x_in


@SCORE_NETWORKS.register("mlp")
def build_score_mlp(
    data_dim: int,
    width: int,
    depth: int,
    input_frequencies: int = 0,
    classes: int = 0,
    axis_gain: int = 0,
) -> ScoreMLP:
    """The arguments are what the card stores under architecture.args (`classes` only for a
    class-conditional network, `axis_gain` only where it is 1)."""
    return ScoreMLP(data_dim, width, depth, input_frequencies, classes, axis_gain)
