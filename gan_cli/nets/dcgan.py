"""DCGAN generator and discriminator (Radford et al. 2015), for any power-of-two image size >= 16.

At 64 px with nz=100, ngf=ndf=64 the parameter counts equal pytorch/examples' dcgan exactly.
With `num_classes` > 0 the label is joined to z in G and, in D, to the input as constant feature maps
(condition_style=joint) or scored apart from the image's realism (condition_style=separate).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.conditional_heads import ConditionalHead, check_condition_style
from gan_cli.nets.layers import dcgan_init_, one_hot, require_condition


def _stages(image_size: int) -> int:
    """Number of stride-2 layers between 4x4 and the image size."""
    stages = math.log2(image_size / 4) if image_size > 0 else -1
    if image_size < 16 or stages != int(stages):
        raise ValueError(
            f"DCGAN needs an image size that is a power of two, at least 16 (got {image_size}); "
            "set data.image_size=32 or 64"
        )
    return int(stages)


class DCGANGenerator(nn.Module):
    """z (100-d) projected to 4x4x(ngf*2^(n-1)), then fractionally-strided convolutions up to the image.

    BatchNorm and ReLU everywhere except the Tanh output; no pooling, no hidden fully connected layers.
    """

    def __init__(self, latent_dim: int = 100, channels: PositiveInt = 3, image_size: PositiveInt = 64, ngf: int = 64,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        stages = _stages(image_size)
        width = ngf * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim + num_classes, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "DCGANGenerator")
        code = one_hot(labels, self.num_classes)
        if code is not None:
            z = torch.cat([z, code.to(z.dtype)], dim=1)
        return self.net(z.view(z.size(0), -1, 1, 1))


def dcgan_features(channels: int, image_size: int, ndf: int) -> tuple[nn.Sequential, int]:
    """DCGAN's discriminator body: strided convolutions with LeakyReLU(0.2) from the image down to 4x4
    (batch norm on every layer but the first); returns the layers and their output width."""
    width = ndf
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for _ in range(_stages(image_size) - 1):
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                   nn.LeakyReLU(0.2, inplace=True)]
        width *= 2
    return nn.Sequential(*layers), width


class DCGANDiscriminator(nn.Module):
    """Strided convolutions with LeakyReLU(0.2) down to 4x4, then a 4x4 convolution to one score.

    BatchNorm on every layer except the input layer; the output is a logit (no sigmoid). A class-conditional
    D (`num_classes` > 0) takes the label in one of two ways (`condition_style`): `joint` joins the one-hot
    label to the image as constant maps (Mirza & Osindero), one network scores the pair; `separate` scores
    realism from the image alone and adds a match score of the image features and the label
    (gan_cli.nets.conditional_heads).
    """

    def __init__(self, channels: PositiveInt = 3, image_size: PositiveInt = 64, ndf: int = 64, num_classes: int = 0,
                 condition_style: str = "joint") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.condition_style = check_condition_style(condition_style)
        self.joins_input = bool(num_classes) and condition_style == "joint"
        self.features, width = dcgan_features(channels + (num_classes if self.joins_input else 0), image_size, ndf)
        if num_classes and condition_style == "separate":
            self.head = ConditionalHead(width, num_classes, "separate")
        else:
            self.head = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        dcgan_init_(self)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "DCGANDiscriminator")
        code = one_hot(labels, self.num_classes)
        if code is not None and self.joins_input:
            maps = code.to(x.dtype)[:, :, None, None].expand(-1, -1, x.size(2), x.size(3))
            x = torch.cat([x, maps], dim=1)
        features = self.features(x)
        if code is not None and not self.joins_input:
            return self.head(features, code)
        return self.head(features).flatten()
