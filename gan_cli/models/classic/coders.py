"""Encoders and decoders of the autoencoders and the VAE (model=autoencoder, model=vae).

An encoder maps images (normalised like the data) to `out_features` numbers: the code of an autoencoder,
or [mu, log sigma^2] of a VAE (2 * code_dim). A decoder maps a code to one logit per pixel; the models turn
logits into images in the data's range (the sigmoid of the logit is the pixel's brightness in [0, 1]) and
into the reconstruction loss (Bernoulli cross-entropy on the logits, or a Gaussian on their sigmoid).

Two families, chosen with `model/coder=fc` or `model/coder=conv`:
- fully connected (Hinton & Salakhutdinov 2006): ReLU layers of the given widths, mirrored in the decoder;
- convolutional (Masci et al. 2011, in DCGAN's layout so that the VAE and DCGAN compare fairly): the
  encoder is DCGAN's discriminator body (stride-2 4x4 convolutions, batch norm, LeakyReLU 0.2) with a 4x4
  convolution to `out_features` as its head; the decoder is DCGAN's generator (transposed convolutions,
  batch norm, ReLU) with its Tanh left out. Image sizes: powers of two, at least 16; any channels.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.errors import UserError
from gan_cli.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.nets.layers import dcgan_init_
from gan_cli.nets.mlp import MLPGenerator


def _check_conv_size(image_size: int) -> None:
    if image_size < 16 or 2 ** round(math.log2(image_size)) != image_size:
        raise UserError(f"The convolutional encoder and decoder (model/coder=conv) need an image size that is a power "
                        f"of two, at least 16, not data.image_size={image_size}. Set data.image_size=32 or 64, or "
                        "use the fully connected ones (model/coder=fc), which take any size.")


class MLPEncoder(nn.Module):
    """Flattened image -> ReLU layers of widths `hidden` -> `out_features` (linear)."""

    def __init__(self, out_features: int, channels: PositiveInt = 1, image_size: PositiveInt = 32,
                 hidden: Sequence[int] = (512, 256)) -> None:
        super().__init__()
        self.out_features = out_features
        layers: list[nn.Module] = [nn.Flatten()]
        width = channels * image_size * image_size
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True)]
            width = units
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPDecoder(MLPGenerator):
    """Code -> ReLU layers of widths `hidden` (give the encoder's in reverse) -> one logit per pixel."""

    def __init__(self, code_dim: PositiveInt, channels: PositiveInt = 1, image_size: PositiveInt = 32,
                 hidden: Sequence[int] = (256, 512)) -> None:
        super().__init__(latent_dim=code_dim, channels=channels, image_size=image_size, hidden=hidden)
        self.code_dim = code_dim
        self.net[-1] = nn.Identity()  # logits, not Tanh: the model maps them to the data's range


class ConvEncoder(DCGANDiscriminator):
    """DCGAN's discriminator body (ndf channels at the input, doubling down to 4x4), then a 4x4 convolution
    to `out_features` numbers (with a bias) instead of DCGAN's single score."""

    def __init__(self, out_features: int, channels: PositiveInt = 3, image_size: PositiveInt = 64,
                 ndf: int = 64) -> None:
        _check_conv_size(image_size)
        super().__init__(channels=channels, image_size=image_size, ndf=ndf)
        self.out_features = out_features
        self.head = nn.Conv2d(self.head.in_channels, out_features, 4, 1, 0)
        dcgan_init_(self.head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).flatten(1)


class ConvDecoder(DCGANGenerator):
    """DCGAN's generator (code projected to 4x4, transposed convolutions up to the image) without its Tanh:
    one logit per pixel."""

    def __init__(self, code_dim: PositiveInt, channels: PositiveInt = 3, image_size: PositiveInt = 64,
                 ngf: int = 64) -> None:
        _check_conv_size(image_size)
        super().__init__(latent_dim=code_dim, channels=channels, image_size=image_size, ngf=ngf)
        self.code_dim = code_dim
        self.net[-1] = nn.Identity()
