"""The networks of LAPGAN (Denton et al. 2015), one generator and one discriminator per pyramid level.

The coarsest level is an ordinary GAN; the paper's 8x8 CIFAR-10 nets are fully connected: G has two ReLU
layers of 1200 units (`gan_cli.nets.mlp.MLPGenerator`), D two ReLU layers of 600 units with dropout
(`CoarseDiscriminator`). Each finer level k is a conditional GAN on the band-pass residual h_k given the
upsampled coarser image l_k:

- `ResidualGenerator`: G_k(z_k, l_k) -> h_k; the noise z_k is one extra image plane next to l_k's colour
  planes ("a 4th colour plane"), then a few same-size convolutions (the paper: 3 layers of 128 channels);
- `ResidualDiscriminator`: D_k(h_k, l_k) -> one score; h_k and l_k are concatenated (D can form their sum,
  the full image, which is what the paper adds) and go through strided convolutions and a linear layer.

Class-conditional as in the paper: the one-hot label goes through a linear layer whose output is reshaped to
one image plane, concatenated with the input planes; the fully connected coarse nets join the one-hot code
to z and to the flattened image (Mirza & Osindero).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.conditional_heads import ConditionalHead, check_condition_style
from gan_cli.nets.layers import dcgan_init_, join, one_hot, require_condition


def separate_head(num_classes: int, condition_style: str, channels: int, size: int) -> ConditionalHead | None:
    """The realism + match score head of a class-conditional D with condition_style=separate (else None: the
    label joins the input, the paper's way)."""
    if num_classes and check_condition_style(condition_style) == "separate":
        return ConditionalHead(channels, num_classes, "separate", size=size)
    return None


class CoarseDiscriminator(nn.Module):
    """The coarsest level's D: the flattened image (and a one-hot label) -> ReLU layers with dropout -> score.
    With condition_style=separate the label skips the input and is scored apart (conditional_heads)."""

    def __init__(self, channels: PositiveInt = 3, image_size: PositiveInt = 8, hidden: Sequence[int] = (600, 600),
                 dropout: float = 0.5, num_classes: int = 0, condition_style: str = "joint") -> None:
        super().__init__()
        self.num_classes = num_classes
        separate = bool(num_classes) and check_condition_style(condition_style) == "separate"
        layers: list[nn.Module] = []
        width = channels * image_size * image_size + (0 if separate else num_classes)
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = units
        self.features = nn.Sequential(*layers)
        # after the features, so that the last layer (tricks' score layer) is the head's score
        self.head = separate_head(num_classes, condition_style, width, 1)
        self.score_layer = None if self.head else nn.Linear(width, 1)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "CoarseDiscriminator")
        code = one_hot(labels, self.num_classes)
        if self.head is not None:
            return self.head(self.features(x.flatten(1))[:, :, None, None], code)
        return self.score_layer(self.features(join(x.flatten(1), code))).flatten()


class LabelPlane(nn.Module):
    """The paper's class conditioning: one-hot label -> linear layer -> one image plane."""

    def __init__(self, num_classes: int, image_size: PositiveInt) -> None:
        super().__init__()
        self.num_classes, self.image_size = num_classes, image_size
        self.linear = nn.Linear(num_classes, image_size * image_size)

    def forward(self, labels: Tensor) -> Tensor:
        code = one_hot(labels, self.num_classes).to(self.linear.weight.dtype)
        return self.linear(code).view(-1, 1, self.image_size, self.image_size)


class ResidualGenerator(nn.Module):
    """G_k(z_k, l_k[, y]) -> h_k: [l_k, noise plane(, label plane)] -> `depth` size-preserving convolutions.

    Hidden layers: `width` channels, BatchNorm and ReLU; the output layer is linear (residuals are signed and
    small). `noise_shape` is the shape of one sample's z_k.
    """

    def __init__(self, channels: PositiveInt = 3, image_size: PositiveInt = 16, width: int = 128, depth: int = 3,
                 kernel_size: int = 3, num_classes: int = 0) -> None:
        super().__init__()
        if depth < 1 or kernel_size % 2 == 0:
            raise ValueError(f"ResidualGenerator needs depth >= 1 and an odd kernel_size (got {depth}, {kernel_size})")
        self.num_classes = num_classes
        self.noise_shape = (1, image_size, image_size)
        self.label_plane = LabelPlane(num_classes, image_size) if num_classes else None
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        in_channels = channels + 1 + (1 if num_classes else 0)
        for _ in range(depth - 1):
            layers += [nn.Conv2d(in_channels, width, kernel_size, 1, pad, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            in_channels = width
        layers.append(nn.Conv2d(in_channels, channels, kernel_size, 1, pad))
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, noise: Tensor, low: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "ResidualGenerator")
        planes = [low, noise.to(low.dtype)]
        if self.label_plane is not None:
            planes.append(self.label_plane(labels).to(low.dtype))
        return self.net(torch.cat(planes, dim=1))


class ResidualDiscriminator(nn.Module):
    """D_k(h_k, l_k[, y]) -> score: [h_k, l_k(, label plane)] -> `depth` stride-2 convolutions with
    LeakyReLU(0.2) -> `score_layer`, a linear layer to one logit."""

    def __init__(self, channels: PositiveInt = 3, image_size: PositiveInt = 16, width: int = 128, depth: int = 2,
                 kernel_size: int = 5, num_classes: int = 0, condition_style: str = "joint") -> None:
        super().__init__()
        if depth < 1 or kernel_size % 2 == 0:
            raise ValueError("ResidualDiscriminator needs depth >= 1 and an odd kernel_size "
                             f"(got {depth}, {kernel_size})")
        self.num_classes = num_classes
        joins_label = bool(num_classes) and check_condition_style(condition_style) == "joint"
        self.label_plane = LabelPlane(num_classes, image_size) if joins_label else None
        layers: list[nn.Module] = []
        in_channels, size = 2 * channels + (1 if joins_label else 0), image_size
        for _ in range(depth):
            layers += [nn.Conv2d(in_channels, width, kernel_size, 2, kernel_size // 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            in_channels, size = width, (size + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = separate_head(num_classes, condition_style, width, size)
        self.score_layer = None if self.head else nn.Linear(width * size * size, 1)
        dcgan_init_(self)

    def forward(self, residual: Tensor, low: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "ResidualDiscriminator")
        planes = [residual, low.to(residual.dtype)]
        if self.label_plane is not None:
            planes.append(self.label_plane(labels).to(residual.dtype))
        features = self.features(torch.cat(planes, dim=1))
        if self.head is not None:
            return self.head(features, one_hot(labels, self.num_classes))
        return self.score_layer(features.flatten(1)).flatten()
