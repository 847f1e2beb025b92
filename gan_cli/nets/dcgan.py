"""DCGAN generator and discriminator (Radford et al. 2015), for any power-of-two image size >= 16.

At 64 px with nz=100, ngf=ndf=64 the parameter counts equal pytorch/examples' dcgan exactly.
With `num_classes` > 0 the label is joined to z in G and to D's input as constant feature maps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

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

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64, ngf: int = 64,
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


class DCGANDiscriminator(nn.Module):
    """Strided convolutions with LeakyReLU(0.2) down to 4x4, then a 4x4 convolution to one score.

    BatchNorm on every layer except the input layer; the output is a logit (no sigmoid).
    """

    def __init__(self, channels: int = 3, image_size: int = 64, ndf: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        stages = _stages(image_size)
        width = ndf
        layers: list[nn.Module] = [nn.Conv2d(channels + num_classes, width, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(stages - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        dcgan_init_(self)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "DCGANDiscriminator")
        code = one_hot(labels, self.num_classes)
        if code is not None:
            maps = code.to(x.dtype)[:, :, None, None].expand(-1, -1, x.size(2), x.size(3))
            x = torch.cat([x, maps], dim=1)
        return self.head(self.features(x)).flatten()
