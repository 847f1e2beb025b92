"""Networks of UNIT (Liu et al. 2017, "Unsupervised Image-to-Image Translation Networks") with the weight
sharing of CoGAN (Liu & Tuzel 2016).

Layers follow the VAEGen of the authors' PyTorch code (mingyuliutw/UNIT, networks.py: ContentEncoder and
Decoder): a 7x7 conv, `n_downsample` 4x4 stride-2 convs (instance norm, ReLU, reflection padding), `n_res`
residual blocks; the decoder mirrors it with residual blocks, nearest-neighbour upsampling + 5x5 convs with
layer norm, and a 7x7 conv with Tanh. As in the paper (and the authors' first release, cocogan_nets.py) the
last `n_shared` residual blocks of the two encoders and the first `n_shared` of the two decoders are ONE set
of modules used by both domains: that is what ties the domains to one latent space.

The latent code is a VAE's with unit variance, as in the reference: the encoder gives the mean mu and
z = mu + N(0, I) noise while training; translation at test time decodes mu.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.resnet import ResnetBlock

DOMAINS = ("A", "B")


def conv_block(in_channels: int, out_channels: int, kernel: int, stride: int, norm: nn.Module | None,
               activation: nn.Module | None) -> list[nn.Module]:
    """Reflection pad, conv, norm, activation: the reference's Conv2dBlock with pad_type=reflect."""
    layers: list[nn.Module] = [nn.ReflectionPad2d((kernel - 1) // 2 if stride == 1 else 1),
                               nn.Conv2d(in_channels, out_channels, kernel, stride)]
    return layers + [m for m in (norm, activation) if m is not None]


def residual_blocks(count: int, dim: int) -> nn.Sequential:
    """`count` residual blocks with instance norm (ResnetBlock is the reference's ResBlock with norm='in')."""
    return nn.Sequential(*(ResnetBlock(dim, "instance", dropout=False) for _ in range(count)))


def domain_encoder(channels: int, dim: int, n_downsample: int, n_res: int) -> nn.Sequential:
    """The domain-specific front of an encoder: 7x7 conv, stride-2 downsamplings, the unshared residual blocks."""
    layers = conv_block(channels, dim, 7, 1, nn.InstanceNorm2d(dim), nn.ReLU(True))
    for _ in range(n_downsample):
        layers += conv_block(dim, dim * 2, 4, 2, nn.InstanceNorm2d(dim * 2), nn.ReLU(True))
        dim *= 2
    return nn.Sequential(*layers, *residual_blocks(n_res, dim))


def domain_decoder(channels: int, dim: int, n_upsample: int, n_res: int) -> nn.Sequential:
    """The domain-specific back of a decoder: the unshared residual blocks, upsampling + 5x5 conv with layer norm
    (GroupNorm with one group: statistics over C, H, W of each image, a scale and shift per channel), 7x7 conv, Tanh."""
    layers: list[nn.Module] = [*residual_blocks(n_res, dim)]
    for _ in range(n_upsample):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                   *conv_block(dim, dim // 2, 5, 1, nn.GroupNorm(1, dim // 2), nn.ReLU(True))]
        dim //= 2
    return nn.Sequential(*layers, *conv_block(dim, channels, 7, 1, None, nn.Tanh()))


class UNITGenerator(nn.Module):
    """Both domains' encoders and decoders around the shared blocks.

    `encoders[d]` then `shared_encoder` give the code's mean mu; `shared_decoder` then `decoders[d]` draw an
    image of domain d from a code. `translator(source, target)` is the network that maps images of one domain to
    the other (or to itself: reconstruction), for gan-translate and the logged grids.
    """

    def __init__(self, channels: PositiveInt = 3, dim: int = 64, n_downsample: int = 2, n_res: int = 4,
                 n_shared: int = 1) -> None:
        super().__init__()
        if not 0 < n_shared <= n_res:
            raise ValueError(f"n_shared must be between 1 and n_res={n_res} (got {n_shared}): UNIT shares the last "
                             "residual blocks of the encoders and the first of the decoders")
        self.size_multiple = 2 ** n_downsample
        self.latent_channels = dim * 2 ** n_downsample
        self.encoders = nn.ModuleDict({d: domain_encoder(channels, dim, n_downsample, n_res - n_shared)
                                       for d in DOMAINS})
        self.shared_encoder = residual_blocks(n_shared, self.latent_channels)
        self.shared_decoder = residual_blocks(n_shared, self.latent_channels)
        self.decoders = nn.ModuleDict({d: domain_decoder(channels, self.latent_channels, n_downsample, n_res - n_shared)
                                       for d in DOMAINS})

    def encode(self, images: Tensor, domain: str) -> Tensor:
        """The mean mu of q(z | x) for images of `domain`."""
        return self.shared_encoder(self.encoders[domain](images))

    @staticmethod
    def sample(mu: Tensor) -> Tensor:
        """z = mu + N(0, I): the reference's latent noise (unit variance, so the KL term depends on mu only)."""
        return mu + torch.randn_like(mu)

    def decode(self, z: Tensor, domain: str) -> Tensor:
        return self.decoders[domain](self.shared_decoder(z))

    def translator(self, source: str, target: str) -> "Translator":
        return Translator(self, source, target)

    def forward(self, images: Tensor, source: str = "A", target: str = "B") -> Tensor:
        return self.decode(self.encode(images, source), target)


class Translator(nn.Module):
    """encoder of `source` + decoder of `target`, decoding the mean code (no noise), as the reference translates.
    It holds the generator's own modules, so it needs no weights of its own."""

    def __init__(self, generator: UNITGenerator, source: str, target: str) -> None:
        super().__init__()
        if source not in DOMAINS or target not in DOMAINS:
            raise ValueError(f"domains are {DOMAINS}, got {source!r} -> {target!r}")
        self.generator, self.source, self.target = generator, source, target
        self.size_multiple = generator.size_multiple
        self.train(generator.training)  # a view: it must not switch the generator's mode when put back

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2] % self.size_multiple or images.shape[-1] % self.size_multiple:
            raise ValueError(f"UNIT needs height and width that are multiples of {self.size_multiple} "
                             f"(got {tuple(images.shape[-2:])})")
        return self.generator(images, self.source, self.target)


class LatentDiscriminator(nn.Module):
    """The optional domain classifier on the shared code (the lecture's latent-space discriminator): strided 3x3
    convs with LeakyReLU(0.2), then a 1x1 conv giving a map of logits 'this code came from domain A'."""

    def __init__(self, channels: PositiveInt, width: int = 64, n_layers: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_layers):
            layers += [nn.Conv2d(channels, width, 3, 2, 1), nn.LeakyReLU(0.2, True)]
            channels = width
        self.model = nn.Sequential(*layers, nn.Conv2d(channels, 1, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.model(z)
