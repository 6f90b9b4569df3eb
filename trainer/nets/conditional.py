"""Class-conditional GANs: any registered (G, D) pair made conditional on a label in 0..K-1.

G(z, y) = G_base([z, e_G(y)]): the base generator with latent_dim + class_embed_dim inputs, the
label's learned embedding joined to z (the cGAN input of Mirza & Osindero 2014).
D(x, y) = head(phi(x)) + <e_D(y), phi(x)>: the projection discriminator (Miyato & Koyama 2018,
Eq. 3), phi the base D's penultimate `features`, e_D a learned embedding of phi's width
(initialised by the config's `projection_init`: init_projection). The
base D's minibatch layers and spectral norm stay as they are (the embedding e_D is spectrally
normalised too when D is, as in the paper's code); packing, which joins several samples (and
so several labels) into one D input, is not combined with conditioning.

The card's architecture args say it: `classes` and `class_embed_dim` beside the base's args;
build_networks rebuilds either kind from them.
"""

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from trainer.nets.registry import ARCHITECTURES

CONDITIONAL_ARGS = ("classes", "class_embed_dim")
# e_D's init: "normal" is nn.Embedding's N(0, 1), which every conditional GAN run before the
# option existed used; "glorot" is the paper's code's (pfnet-research/sngan_projection,
# dis_models: the projection's SNEmbedID takes initialW=GlorotUniform()), U(-a, a) with
# a = sqrt(6 / (K + width)).
PROJECTION_INITS = ("normal", "glorot")


class ConditionalGenerator(nn.Module):
    """G(z, labels): z [batch, latent_dim] float32, labels [batch] int64 -> samples."""

    def __init__(self, base: nn.Module, classes: int, embed_dim: int):
        super().__init__()
        self.base = base
        self.embedding = nn.Embedding(classes, embed_dim)
        self.value_range = getattr(base, "value_range", None)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.base(torch.cat([z, self.embedding(labels)], dim=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, labels): x [batch, ...], labels [batch] int64 -> logits [batch] (real > 0)."""

    def __init__(self, base: nn.Module, classes: int, width: int, spectral: bool = False):
        super().__init__()
        self.base = base
        self.embedding = nn.Embedding(classes, width)  # width: phi's
        if spectral:
            spectral_norm(self.embedding)

    def features(self, x: Tensor) -> Tensor:
        """The base D's penultimate features phi(x) (feature matching reads them)."""
        return self.base.features(x)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        phi = self.base.features(x)
        unconditional = self.base.head(self.base.batch_layers(phi)).squeeze(-1)
        return unconditional + (self.embedding(labels) * phi).sum(dim=-1)


def init_projection(discriminator: ProjectionDiscriminator, scheme: str) -> None:
    """Initialise D's class embedding e_D in place by `scheme` (PROJECTION_INITS): "normal"
    leaves nn.Embedding's N(0, 1); "glorot" draws Glorot uniform from torch's global RNG. With
    N(0, 1) the projection term starts tens of times larger than head(phi) (stacked digits:
    phi 512 wide); Glorot's bound, 0.106 there, starts it near head(phi)'s scale."""
    if scheme == "normal":
        return
    embedding = discriminator.embedding
    weight = (
        embedding.parametrizations.weight.original  # the raw weight under spectral norm
        if parametrize.is_parametrized(embedding, "weight")
        else embedding.weight
    )
    with torch.no_grad():
        nn.init.xavier_uniform_(weight)


def feature_width(discriminator: nn.Module, args: dict[str, Any]) -> int:
    """The width of D's penultimate features phi, measured on zeros shaped like the data the
    args describe (points of data_dim, or images of channels x size x size), in eval mode (no
    spectral-norm iteration)."""
    if "data_dim" in args:
        example = torch.zeros(2, args["data_dim"])
    else:
        size = args.get("size", 8)
        example = torch.zeros(2, args["channels"], size, size)
    discriminator.eval()
    with torch.no_grad():
        width = int(discriminator.features(example).shape[-1])
    discriminator.train()
    return width


def build_networks(architecture: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """(G, D) from a card's or checkpoint's architecture {"name", "args"}: the registered
    pair, made conditional (ConditionalGenerator, ProjectionDiscriminator) when the args hold
    `classes`."""
    args = dict(architecture["args"])
    if "classes" not in args:
        return ARCHITECTURES.get(architecture["name"])(**args)
    classes, embed_dim = args.pop("classes"), args.pop("class_embed_dim")
    args["latent_dim"] += embed_dim
    generator, discriminator = ARCHITECTURES.get(architecture["name"])(**args)
    width, spectral = feature_width(discriminator, args), bool(args.get("d_spectral_norm"))
    return (
        ConditionalGenerator(generator, classes, embed_dim),
        ProjectionDiscriminator(discriminator, classes, width, spectral),
    )
