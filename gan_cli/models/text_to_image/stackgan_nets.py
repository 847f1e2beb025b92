"""StackGAN's networks (Zhang et al. 2016), laid out as the authors' PyTorch code (hanzhanggit/StackGAN-Pytorch,
model.py) and scaled by the image size:

- Stage-I G: conditioning augmentation c0 ~ N(mu(phi_t), Sigma(phi_t)), [z, c0] -> fully connected -> 4x4 with
  `ngf * 8` channels -> upsampling blocks (nearest x2, 3x3 conv, batch norm, ReLU) halving the channels -> 3x3
  conv -> tanh, at `image_size` (64 in the paper: four blocks);
- Stage-II G: the Stage-I image -> encoder (3x3 conv, then `encoder_downsamples` stride-2 4x4 convs doubling the
  channels) joined with its own conditioning augmentation's c replicated spatially -> 3x3 conv -> residual
  blocks -> upsampling blocks to 4x the Stage-I size -> 3x3 conv -> tanh (64 -> 16 -> 256 in the paper);
- D (both stages): stride-2 4x4 convs down to 4x4 (channels doubling from `ndf`, no batch norm on the first; past
  `ndf * 8`, 3x3 convs bring them back to `ndf * 8` as the reference Stage-II D does), then the shared
  conditional head (gan_cli.nets.conditional_heads, `condition_style` joint | separate) on the image code and the
  text compressed by a fully connected layer (the paper's N_d = 128; the authors' PyTorch code feeds D the
  generator's detached mu instead).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.models.text_to_image.conditioning import ConditioningAugmentation
from gan_cli.models.text_to_image.text_cgan_nets import text_compressor
from gan_cli.nets.conditional_heads import ConditionalHead


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """x2 nearest-neighbour upsampling, 3x3 conv, batch norm, ReLU (the reference's upBlock)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(in_channels, out_channels),
                         nn.BatchNorm2d(out_channels), nn.ReLU(True))


def doublings(size: int, start: int, what: str) -> int:
    """How many x2 steps lead from `start` px to `size` px (a power of two times `start`)."""
    steps = math.log2(size / start) if size >= start else -1
    if steps < 0 or steps != int(steps):
        raise ValueError(f"{what} must be {start} px times a power of two (4, 8, 16, 32, 64, ...); got {size} px")
    return int(steps)


def halved(width: int, times: int, what: str) -> list[int]:
    """`width`, width/2, ... (`times` halvings), refusing widths that do not halve evenly down to >= 1."""
    if width % (2**times):
        raise ValueError(f"{what}={width} must be divisible by {2**times} at this image size (it is halved "
                         f"{times} times)")
    return [width // 2**i for i in range(times + 1)]


class ResBlock(nn.Module):
    """x + (3x3 conv, BN, ReLU, 3x3 conv, BN)(x), then ReLU."""

    def __init__(self, channels: PositiveInt) -> None:
        super().__init__()
        self.block = nn.Sequential(conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(True),
                                   conv3x3(channels, channels), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.block(x))


def to_image(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(in_channels, channels), nn.Tanh())


class Stage1Generator(nn.Module):
    """G_0(z, phi_t) -> (low-resolution image, mu, logvar) of its conditioning augmentation."""

    def __init__(self, text_dim: int, channels: PositiveInt = 3, image_size: PositiveInt = 64, latent_dim: int = 100,
                 condition_dim: int = 128, ngf: int = 128, ca_activation: str = "relu") -> None:
        super().__init__()
        self.latent_dim, self.image_size = latent_dim, image_size
        ups = doublings(image_size, 4, "the Stage-I image size (data.image_size / 4)")
        widths = halved(ngf * 8, ups, "model.stage1_generator.ngf * 8")
        self.ca = ConditioningAugmentation(text_dim, condition_dim, ca_activation)
        self.fc = nn.Sequential(nn.Linear(latent_dim + condition_dim, widths[0] * 16, bias=False),
                                nn.BatchNorm1d(widths[0] * 16), nn.ReLU(True))
        self.upsample = nn.Sequential(*[up_block(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.image = to_image(widths[-1], channels)

    def forward(self, z: Tensor, text: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(text)
        h = self.fc(torch.cat([z, c], dim=1)).view(z.size(0), -1, 4, 4)
        return self.image(self.upsample(h)), mu, logvar


class Stage2Generator(nn.Module):
    """G(s_0, phi_t) -> (image at 4x the Stage-I size, mu, logvar): refines the Stage-I image s_0 with the text.
    No noise: the randomness is already in s_0 (as in the paper)."""

    def __init__(self, text_dim: int, channels: PositiveInt = 3, image_size: PositiveInt = 256,
                 condition_dim: int = 128, ngf: int = 128, residual_blocks: int = 4, encoder_downsamples: int = 2,
                 ca_activation: str = "relu") -> None:
        super().__init__()
        low = image_size // 4
        if image_size % 4 or low % 2**encoder_downsamples:
            raise ValueError(f"the Stage-I size {image_size}/4 must halve {encoder_downsamples} times "
                             "(model.stage2_generator.encoder_downsamples)")
        self.ca = ConditioningAugmentation(text_dim, condition_dim, ca_activation)
        self.code_size = low // 2**encoder_downsamples
        encoder: list[nn.Module] = [conv3x3(channels, ngf), nn.ReLU(True)]
        for i in range(encoder_downsamples):
            encoder += [nn.Conv2d(ngf * 2**i, ngf * 2 ** (i + 1), 4, 2, 1, bias=False),
                        nn.BatchNorm2d(ngf * 2 ** (i + 1)), nn.ReLU(True)]
        self.encoder = nn.Sequential(*encoder)
        width = ngf * 2**encoder_downsamples
        self.joint = nn.Sequential(conv3x3(width + condition_dim, width), nn.BatchNorm2d(width), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResBlock(width) for _ in range(residual_blocks)])
        widths = halved(width, encoder_downsamples + 2, "model.stage2_generator.ngf * 2^encoder_downsamples")
        self.upsample = nn.Sequential(*[up_block(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.image = to_image(widths[-1], channels)

    def forward(self, low: Tensor, text: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(text)
        code = self.encoder(low)
        c = c[:, :, None, None].expand(-1, -1, *code.shape[-2:])
        h = self.residual(self.joint(torch.cat([code, c], dim=1)))
        return self.image(self.upsample(h)), mu, logvar


class StackDiscriminator(nn.Module):
    """D(x, phi_t) -> one logit per image: the image code at 4x4 scored with the compressed text."""

    def __init__(self, text_dim: int, channels: PositiveInt = 3, image_size: PositiveInt = 64, ndf: int = 64,
                 condition_dim: int = 128, condition_style: str = "joint") -> None:
        super().__init__()
        downs = doublings(image_size, 4, "the discriminator's image size")
        if downs < 1:
            raise ValueError("the discriminator needs images of at least 8 px")
        widths = [ndf * 2**i for i in range(downs)]
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        width = widths[-1]
        while width > ndf * 8:  # the reference Stage-II D: ndf*32 -> ndf*16 -> ndf*8 at 4x4
            layers += [conv3x3(width, width // 2), nn.BatchNorm2d(width // 2), nn.LeakyReLU(0.2, True)]
            width //= 2
        self.encode_image = nn.Sequential(*layers)
        # the paper: phi_t compressed to N_d dimensions by a fully connected layer (+ leaky ReLU 0.2)
        self.compress = text_compressor(text_dim, condition_dim)
        self.head = ConditionalHead(width, condition_dim, condition_style)

    def forward(self, images: Tensor, text: Tensor) -> Tensor:
        return self.head(self.encode_image(images), self.compress(text))
