"""The Blending GAN's generator of GP-GAN (Wu et al. 2017): an encoder-decoder, as the authors' model.py
EncoderDecoder (itself the Context Encoder of Pathak et al. 2016 with a fully connected bottleneck).

The encoder is a DCGAN discriminator's body (strided 4x4 convolutions with LeakyReLU(0.2), batch norm
after all but the first) down to 4x4, then a 4x4 convolution to a `bottleneck`-d code (4000 in the paper):
a fully connected layer over the 4x4 maps. Batch norm and LeakyReLU on the code, then a DCGAN generator
decodes it back to the image. The parts are gan_cli.nets.dcgan's networks, so at 64 px with nef = ngf = 64
both halves are the authors' layers exactly.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.nets.layers import dcgan_init_


class BlendingEncoderDecoder(nn.Module):
    """A `channels` x `image_size` x `image_size` composite -> a blended image of the same size (Tanh output).

    `image_size` is a power of two >= 16 (64 in the paper); the network takes only that size, so callers
    resize larger images to it (gan-blend does).
    """

    def __init__(self, channels: PositiveInt = 3, image_size: PositiveInt = 64, nef: int = 64, ngf: int = 64,
                 bottleneck: int = 4000) -> None:
        super().__init__()
        self.channels, self.image_size, self.bottleneck = channels, image_size, bottleneck
        body = DCGANDiscriminator(channels, image_size, nef).features  # down to (nef * 2^(n-1)) x 4 x 4
        width = [m for m in body if isinstance(m, nn.Conv2d)][-1].out_channels
        self.encoder = nn.Sequential(body, nn.Conv2d(width, bottleneck, 4, 1, 0, bias=False),
                                     nn.BatchNorm2d(bottleneck), nn.LeakyReLU(0.2, inplace=True))
        self.decoder = DCGANGenerator(bottleneck, channels, image_size, ngf)
        dcgan_init_(self)

    def forward(self, composite: Tensor) -> Tensor:
        size = tuple(composite.shape[-3:])
        if size != (self.channels, self.image_size, self.image_size):
            raise ValueError(f"BlendingEncoderDecoder takes {self.channels} x {self.image_size} x {self.image_size} "
                             f"images, not {' x '.join(map(str, size))}; resize them to its training size first.")
        return self.decoder(self.encoder(composite).flatten(1))
