"""A small U-Net for 8x8 images (1 or 3 channels): EDM's raw network F for the digits.

Two resolutions (8x8, 4x4) and a 2x2 middle; residual blocks of GroupNorm -> SiLU -> 3x3 conv
with the noise embedding added between the two convolutions (the DDPM++ block without
attention, which buys nothing at 8x8). GroupNorm uses gcd(channels, 32) groups, which always
divides the width.
"""

import math

import torch
from torch import Tensor, nn

from trainer.nets.edm import NoiseEmbedding
from trainer.nets.registry import SCORE_NETWORKS

MAX_GROUPS = 32


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm whose group count divides `channels` (gcd(channels, 32))."""
    return nn.GroupNorm(math.gcd(channels, MAX_GROUPS), channels)


class ConvBlock(nn.Module):
    """Residual block: [batch, c_in, H, W] + emb [batch, emb_dim] -> [batch, c_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.embedding = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.activation = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.activation(self.norm1(x)))
        h = h + self.embedding(emb)[:, :, None, None]
        h = self.conv2(self.activation(self.norm2(h)))
        return self.skip(x) + h


class ScoreUNet(nn.Module):
    """F(x_in, c_noise[, labels]): x_in [batch, channels, 8, 8], c_noise [batch] (and with
    `classes` K > 0, labels [batch] int64 in 0..K-1) -> same shape as x_in.

    Widths: `width` at 8x8, 2 * width at 4x4 and 2x2. The class joins the noise embedding
    (NoiseEmbedding). The output convolution starts at 0, so D starts as c_skip * x.
    """

    def __init__(self, channels: int = 1, width: int = 64, classes: int = 0):
        super().__init__()
        wide = 2 * width
        self.embedding = NoiseEmbedding(4 * width, classes=classes)
        emb = 4 * width
        self.input = nn.Conv2d(channels, width, 3, padding=1)
        self.down8 = ConvBlock(width, width, emb)
        self.to4 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.down4 = ConvBlock(width, wide, emb)
        self.to2 = nn.Conv2d(wide, wide, 3, stride=2, padding=1)
        self.middle = nn.ModuleList([ConvBlock(wide, wide, emb), ConvBlock(wide, wide, emb)])
        self.up4 = ConvBlock(2 * wide, wide, emb)
        self.up8 = ConvBlock(wide + width, width, emb)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.output = nn.Sequential(
            group_norm(width), nn.SiLU(), nn.Conv2d(width, channels, 3, 1, 1)
        )
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    def forward(self, x_in: Tensor, c_noise: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.embedding(c_noise, labels)
        skip8 = self.down8(self.input(x_in), emb)  # [batch, width, 8, 8]
        skip4 = self.down4(self.to4(skip8), emb)  # [batch, wide, 4, 4]
        h = self.to2(skip4)  # [batch, wide, 2, 2]
        for block in self.middle:
            h = block(h, emb)
        h = self.up4(torch.cat([self.upsample(h), skip4], dim=1), emb)  # [batch, wide, 4, 4]
        h = self.up8(torch.cat([self.upsample(h), skip8], dim=1), emb)  # [batch, width, 8, 8]
        return self.output(h)


@SCORE_NETWORKS.register("unet")
def build_score_unet(channels: int, width: int, classes: int = 0) -> ScoreUNet:
    """The arguments are what the card stores under architecture.args (`classes` only for a
    class-conditional network)."""
    return ScoreUNet(channels, width, classes)
