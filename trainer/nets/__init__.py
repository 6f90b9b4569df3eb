"""Networks by short name: GAN architectures (mlp.py, dcgan.py) in ARCHITECTURES, EDM's raw
score networks (edm_mlp.py, edm_unet.py) in SCORE_NETWORKS and VAE encoder/decoder pairs (vae.py)
in VAE_NETWORKS. Importing the package registers them all (registry.py holds the registries)."""

from trainer.nets import conditional, dcgan, edm_mlp, edm_unet, mlp, vae
from trainer.nets.registry import ARCHITECTURES, SCORE_NETWORKS, VAE_NETWORKS

__all__ = [
    "ARCHITECTURES",
    "SCORE_NETWORKS",
    "VAE_NETWORKS",
    "conditional",
    "dcgan",
    "edm_mlp",
    "edm_unet",
    "mlp",
    "vae",
]
