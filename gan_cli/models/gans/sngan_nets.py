"""SNGAN's ResNet generator and discriminator (Miyato et al. 2018, "Spectral Normalization for Generative
Adversarial Networks", appendix B.4), class-conditional with conditional batch norm in G and the projection
discriminator (Miyato & Koyama 2018, "cGANs with Projection Discriminator").

Two layouts, picked by the image size as in the papers:

- 32 px and smaller (the paper's CIFAR-10 networks): G keeps `ngf` channels in every block (ngf 256), D keeps
  `ndf` (ndf 128) and down-samples only in its first two blocks;
- 64 px and larger (the ImageNet-style networks): G halves its channels per up-sampling block from `ngf` (1024),
  D doubles them per down-sampling block up to `ndf` (1024).

With the defaults the parameter counts equal Mimicry's SNGAN and cGAN-PD networks (tests/test_sngan.py). As in
the authors' Chainer code and Mimicry: bilinear up-sampling, average-pool down-sampling, a learned 1x1 shortcut
where a block changes size or width, D's features summed over space before the linear score, Xavier-uniform
weights (gain sqrt 2 inside the residual branches, 1 elsewhere).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.layers import require_condition
from gan_cli.nets.spectral import apply_spectral_norm


def resnet_stages(image_size: int) -> int:
    """Up-sampling blocks from 4x4 to `image_size` (a power of two, at least 16)."""
    stages = math.log2(image_size / 4) if image_size > 0 else -1
    if image_size < 16 or stages != int(stages):
        raise ValueError(f"SNGAN's networks need an image size that is a power of two, at least 16 (got "
                         f"{image_size}); set data.image_size=32 or 64")
    return int(stages)


def xavier_(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    return layer


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without its own affine parameters, then a scale and shift looked up per class (the scale
    starts near 1, the shift at 0). Without classes it is plain batch norm."""

    def __init__(self, channels: int, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.BatchNorm2d(channels, affine=not num_classes)
        if num_classes:
            self.embed = nn.Embedding(num_classes, 2 * channels)
            nn.init.normal_(self.embed.weight[:, :channels], 1.0, 0.02)
            nn.init.zeros_(self.embed.weight[:, channels:])

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        x = self.norm(x)
        if not self.num_classes:
            return x
        scale, shift = self.embed(labels.long()).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        return scale * x + shift


class GeneratorBlock(nn.Module):
    """BN-ReLU-(up-sample)-conv3x3-BN-ReLU-conv3x3, plus the (up-sampled, 1x1-convolved) input."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, num_classes)
        self.conv1 = xavier_(nn.Conv2d(in_channels, out_channels, 3, 1, 1), math.sqrt(2))
        self.norm2 = ConditionalBatchNorm2d(out_channels, num_classes)
        self.conv2 = xavier_(nn.Conv2d(out_channels, out_channels, 3, 1, 1), math.sqrt(2))
        self.shortcut = xavier_(nn.Conv2d(in_channels, out_channels, 1), 1.0)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = F.relu(self.norm1(x, labels))
        h = self.conv1(upsample(h))
        h = self.conv2(F.relu(self.norm2(h, labels)))
        return h + self.shortcut(upsample(x))


def upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class DiscriminatorBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3-(avg-pool), plus the input (1x1-convolved and pooled where the block changes
    width or size). The first block (`first`) has no leading ReLU and pools its input before the shortcut, as
    the authors' "optimized" block."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        hidden = out_channels if first else in_channels
        self.conv1 = xavier_(nn.Conv2d(in_channels, hidden, 3, 1, 1), math.sqrt(2))
        self.conv2 = xavier_(nn.Conv2d(hidden, out_channels, 3, 1, 1), math.sqrt(2))
        learned = first or downsample or in_channels != out_channels
        self.shortcut = xavier_(nn.Conv2d(in_channels, out_channels, 1), 1.0) if learned else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.skip(x)

    def skip(self, x: Tensor) -> Tensor:
        if self.shortcut is None:
            return x
        if self.first:  # pool, then convolve (the authors' order in the first block)
            return self.shortcut(F.avg_pool2d(x, 2))
        x = self.shortcut(x)
        return F.avg_pool2d(x, 2) if self.downsample else x


class SNGANGenerator(nn.Module):
    """z (128-d) -> linear to 4x4 x width -> up-sampling residual blocks -> BN, ReLU, conv3x3, tanh."""

    def __init__(self, latent_dim: PositiveInt = 128, channels: PositiveInt = 3, image_size: PositiveInt = 32,
                 ngf: PositiveInt = 256, num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        stages = resnet_stages(image_size)
        widths = [ngf] * (stages + 1) if image_size <= 32 else [ngf >> i for i in range(stages + 1)]
        self.linear = xavier_(nn.Linear(latent_dim, 16 * widths[0]), 1.0)
        self.blocks = nn.ModuleList(GeneratorBlock(a, b, num_classes) for a, b in zip(widths, widths[1:]))
        self.norm = nn.BatchNorm2d(widths[-1])
        self.to_image = xavier_(nn.Conv2d(widths[-1], channels, 3, 1, 1), 1.0)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "SNGANGenerator")
        h = self.linear(z.flatten(1)).view(z.size(0), -1, 4, 4)
        for block in self.blocks:
            h = block(h, labels if self.num_classes else None)
        return torch.tanh(self.to_image(F.relu(self.norm(h))))


class SNGANDiscriminator(nn.Module):
    """Residual blocks (every layer spectrally normalised), ReLU, a sum over space, then a linear score; with
    `num_classes` the projection term <embed(y), features> is added to the score."""

    def __init__(self, channels: PositiveInt = 3, image_size: PositiveInt = 32, ndf: PositiveInt = 128,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        stages = resnet_stages(image_size)
        if image_size <= 32:  # CIFAR-10 layout: halve twice, then two blocks at that size
            specs = [(channels, ndf, True)] + [(ndf, ndf, True)] * (stages - 2) + [(ndf, ndf, False)] * 2
        else:  # widths ndf / 2^stages ... ndf, halving the size in every block
            widths = [channels] + [ndf >> i for i in range(stages, -1, -1)]
            specs = [(a, b, True) for a, b in zip(widths, widths[1:])]
        self.blocks = nn.Sequential(*(DiscriminatorBlock(a, b, down, first=i == 0)
                                      for i, (a, b, down) in enumerate(specs)))
        width = specs[-1][1]
        self.score_layer = xavier_(nn.Linear(width, 1), 1.0)
        if num_classes:
            self.embed = spectral_norm(xavier_(nn.Embedding(num_classes, width), 1.0))
        apply_spectral_norm(self)

    def features(self, images: Tensor) -> Tensor:
        """The (batch, width) features the score and the projection read: ReLU, then summed over space."""
        return F.relu(self.blocks(images)).sum(dim=(2, 3))

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "SNGANDiscriminator")
        h = self.features(images)
        scores = self.score_layer(h).flatten()
        if self.num_classes:
            scores = scores + (self.embed(labels.long()).to(h.dtype) * h).sum(dim=1)
        return scores
