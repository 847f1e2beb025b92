"""Fully connected G and D of Goodfellow et al. 2014, optionally class-conditional (Mirza & Osindero 2014)."""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.conditional_heads import ConditionalHead, check_condition_style
from gan_cli.nets.layers import Maxout, join, one_hot, require_condition


class MLPGenerator(nn.Module):
    """z (and a one-hot label) -> ReLU hidden layers -> an image in [-1, 1] (Tanh output).

    The paper's MNIST generator had two ReLU layers of 1200 units and a sigmoid output; images here are
    normalised to [-1, 1], so the output unit is Tanh.
    """

    def __init__(self, latent_dim: int = 100, channels: PositiveInt = 1, image_size: PositiveInt = 28,
                 hidden: Sequence[int] = (1200, 1200), num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = (channels, image_size, image_size)
        layers: list[nn.Module] = []
        width = latent_dim + num_classes
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True)]
            width = units
        layers += [nn.Linear(width, math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "MLPGenerator")
        out = self.net(join(z, one_hot(labels, self.num_classes)))
        return out.view(z.size(0), *self.image_shape)


class MLPDiscriminator(nn.Module):
    """image (and a one-hot label) -> maxout hidden layers with dropout -> one score (a logit).

    The paper's MNIST discriminator: two maxout layers of 240 units with 5 pieces; dropout keeps inputs
    with probability 0.8 and hidden units with probability 0.5. A class-conditional D takes the label as
    `condition_style` says: `joint` joins it to the input (Mirza & Osindero), `separate` scores realism from
    the image's last hidden layer and adds a match score of that layer and the label
    (gan_cli.nets.conditional_heads).
    """

    def __init__(self, channels: PositiveInt = 1, image_size: PositiveInt = 28, hidden: Sequence[int] = (240, 240),
                 pieces: int = 5, dropout: float = 0.5, input_dropout: float = 0.2, num_classes: int = 0,
                 condition_style: str = "joint") -> None:
        super().__init__()
        self.num_classes = num_classes
        separate = bool(num_classes) and check_condition_style(condition_style) == "separate"
        layers: list[nn.Module] = []
        width = channels * image_size * image_size + (0 if separate else num_classes)
        for i, units in enumerate(hidden):
            layers += [nn.Dropout(input_dropout if i == 0 else dropout), Maxout(width, units, pieces)]
            width = units
        layers.append(nn.Dropout(dropout))
        # the hidden layer as a 1x1 feature map for the separate head, else the joint net's last linear layer
        self.head = ConditionalHead(width, num_classes, "separate", size=1) if separate else None
        self.net = nn.Sequential(*layers, *([] if separate else [nn.Linear(width, 1)]))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        require_condition(labels, self.num_classes, "MLPDiscriminator")
        code = one_hot(labels, self.num_classes)
        if self.head is None:
            return self.net(join(x.flatten(1), code)).squeeze(1)
        return self.head(self.net(x.flatten(1))[:, :, None, None], code)
