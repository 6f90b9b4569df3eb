"""EDM preconditioning and training loss (Karras et al. 2022, Table 1 and Eq. 2, 7, 8).

D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)), with
    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out  = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in   = 1 / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4
and the loss E_{sigma, y, n} lambda(sigma) |D(y + n, sigma) - y|^2 with ln(sigma) ~
N(P_mean, P_std^2) and lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2, which
makes the effective target of F unit-variance at every noise level.
"""

import torch
from torch import Tensor, nn

from trainer.distributed import local_rows


def preconditioning(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) for noise levels sigma [batch] > 0, each [batch]."""
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = 1.0 / total.sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2, [batch]."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class Denoiser(nn.Module):
    """D(x, sigma[, labels]): x [batch, *shape] float32, sigma [batch] float32 > 0 (and a
    class-conditional network's labels [batch] int64) -> [batch, *shape].

    Wraps a raw network F(x_in [batch, *shape], c_noise [batch][, labels]) (trainer.nets.edm).
    sigma is a per-sample tensor, so the exported graph takes it as an input rather than a
    constant; so are the labels.
    """

    def __init__(self, network: nn.Module, sigma_data: float):
        super().__init__()
        self.network = network
        self.sigma_data = sigma_data

    def forward(self, x: Tensor, sigma: Tensor, labels: Tensor | None = None) -> Tensor:
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, self.sigma_data)
        expand = (-1,) + (1,) * (x.ndim - 1)  # [batch] -> [batch, 1, ...] for broadcasting
        F_x = self.network(c_in.reshape(expand) * x, c_noise, labels)
        return c_skip.reshape(expand) * x + c_out.reshape(expand) * F_x


def edm_loss(
    denoiser: Denoiser,
    y: Tensor,
    p_mean: float,
    p_std: float,
    generator: torch.Generator,
    labels: Tensor | None = None,
) -> Tensor:
    """The EDM loss on clean data y [batch, *shape] (scaled to std sigma_data), and a
    conditional denoiser's labels [batch] int64 (each sample's class): a scalar.

    sigma and the noise n come from `generator` only (no global RNG), on the CPU: this rank's
    rows of the global batch's draws (trainer.distributed.local_rows), moved to y's device.
    """
    batch, shape = y.shape[0], y.shape[1:]
    normal = local_rows(lambda rows: torch.randn(rows, generator=generator), batch)
    ln_sigma = p_mean + p_std * normal.to(y.device)
    sigma = ln_sigma.exp()  # [batch]
    noise = local_rows(lambda rows: torch.randn((rows, *shape), generator=generator), batch)
    n = noise.to(y.device) * sigma.reshape((-1,) + (1,) * (y.ndim - 1))
    D_yn = denoiser(y + n, sigma, labels)
    per_sample = ((D_yn - y) ** 2).flatten(1).mean(dim=1)  # [batch]
    return (loss_weight(sigma, denoiser.sigma_data) * per_sample).mean()
