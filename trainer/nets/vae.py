"""VAE encoders and decoders (Kingma & Welling 2014), registered in VAE_NETWORKS by short name.

"mlp" (points, the 2-D mixtures): the encoder is `depth` x `hidden` ReLU layers to (mu, log
sigma^2) of q(z|x); the decoder is the GAN's MLP generator (trainer.nets.mlp.MLPGenerator), so a
VAE and a GAN of the same sizes differ only in how they are trained. "conv" (images): the encoder
mirrors the DCGAN discriminator's strided convolutions, the decoder is the DCGAN generator (tanh
into [-1, 1]). The decoder alone is exported: it is served like a GAN's G(z), z ~ N(0, I).
"""

from torch import Tensor, nn

from trainer.nets.dcgan import DCGANGenerator, conv_body
from trainer.nets.mlp import MLPGenerator, mlp_layers
from trainer.nets.registry import VAE_NETWORKS


class MLPEncoder(nn.Module):
    """q(z|x): x [batch, data_dim] float32 -> (mu, log_var), each [batch, latent_dim] float32."""

    def __init__(self, data_dim: int, hidden: int, depth: int, latent_dim: int):
        super().__init__()
        self.net = mlp_layers(data_dim, hidden, depth, 2 * latent_dim, nn.ReLU)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_var = self.net(x).chunk(2, dim=1)
        return mu, log_var


class ConvEncoder(nn.Module):
    """q(z|x): images [batch, channels, size, size] float32 -> (mu, log_var), each [batch,
    latent_dim] float32. The DCGAN discriminator's body (dcgan.conv_body: strided 4x4 convs with
    LeakyReLU(0.2) down to 2x2, channels doubling from `width`), then one linear layer."""

    def __init__(self, channels: int, width: int, latent_dim: int, size: int = 8):
        super().__init__()
        self.body, features = conv_body(channels, width, size)
        self.head = nn.Linear(features, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_var = self.head(self.body(x)).chunk(2, dim=1)
        return mu, log_var


@VAE_NETWORKS.register("mlp")
def build_mlp_vae(
    latent_dim: int, data_dim: int, hidden: int, depth: int
) -> tuple[MLPEncoder, MLPGenerator]:
    """(encoder, decoder) for points; the arguments are what the card stores under
    architecture.args."""
    encoder = MLPEncoder(data_dim, hidden, depth, latent_dim)
    return encoder, MLPGenerator(latent_dim, hidden, depth, data_dim)


@VAE_NETWORKS.register("conv")
def build_conv_vae(
    latent_dim: int, channels: int, width: int, size: int = 8
) -> tuple[ConvEncoder, DCGANGenerator]:
    """(encoder, decoder) for square images of side `size`; the arguments are what the card
    stores under architecture.args."""
    encoder = ConvEncoder(channels, width, latent_dim, size)
    return encoder, DCGANGenerator(latent_dim, channels, width, size)
