"""The MNIST networks of the semi-supervised GAN of Salimans et al. 2016, "Improved Techniques for Training
GANs" (openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py).

G: z (100) -> 500 -> 500 fully connected units (batch norm, softplus) -> the image's pixels in [-1, 1].
D: a K-class classifier of fully connected weight-normalised ReLU layers 1000, 500, 250, 250, 250, with
Gaussian noise on its input (std 0.3) and on every hidden layer's output (std 0.5) while training; its
K logits are the semi-supervised GAN's first K classes (the model fixes the logit of class K+1,
"generated", at 0).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from gan_cli.config.ranges import PositiveInt
from gan_cli.errors import UserError


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise while training; the identity in eval mode."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"std={self.std}"


class SSGANGenerator(nn.Module):
    """z -> fully connected layers (batch norm, softplus) -> Tanh pixels reshaped to the image.

    As the reference, every hidden layer is linear without bias, batch norm, then softplus, and the output
    layer is weight-normalised. The reference's sigmoid output (pixels in [0, 1]) is Tanh here: the data
    is normalised to [-1, 1]. The generator is unconditional (`num_classes` = 0).
    """

    num_classes = 0

    def __init__(self, latent_dim: int = 100, channels: PositiveInt = 1, image_size: PositiveInt = 28,
                 hidden: Sequence[int] = (500, 500)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = (channels, image_size, image_size)
        layers: list[nn.Module] = []
        width = latent_dim
        for units in hidden:
            layers += [nn.Linear(width, units, bias=False), nn.BatchNorm1d(units), nn.Softplus()]
            width = units
        layers += [weight_norm(nn.Linear(width, math.prod(self.image_shape))), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z).view(z.size(0), *self.image_shape)


class SSGANDiscriminator(nn.Module):
    """image -> noisy weight-normalised ReLU layers -> K class logits.

    `features(x)` are the last hidden layer's activations (what feature matching matches), `score_layer`
    the final linear layer: `forward(x) == score_layer(noise(features(x)))`. The Gaussian noise is active
    in training mode only.
    """

    def __init__(self, channels: PositiveInt = 1, image_size: PositiveInt = 28, num_classes: int = 10,
                 hidden: Sequence[int] = (1000, 500, 250, 250, 250), input_noise: float = 0.3,
                 hidden_noise: float = 0.5) -> None:
        super().__init__()
        if num_classes < 2:
            raise UserError(
                f"model=ssgan's discriminator classifies the data's labels, and this data has data.num_classes="
                f"{num_classes}. Use labelled data (data=mnist_5k, mnist, fashion_mnist, cifar10), or "
                "data=image_folder with data.dataset.labels_from_subfolders=true data.num_classes=N."
            )
        if not hidden:
            raise ValueError("SSGANDiscriminator needs at least one hidden layer (its features)")
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.feature_dim = hidden[-1]
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        width = channels * image_size * image_size
        for i, units in enumerate(hidden):
            if i:
                layers.append(GaussianNoise(hidden_noise))
            layers += [weight_norm(nn.Linear(width, units)), nn.ReLU()]
            width = units
        self.body = nn.Sequential(*layers)
        self.noise = GaussianNoise(hidden_noise)
        self.score_layer = weight_norm(nn.Linear(width, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's ReLU activations, (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The K class logits, (N, num_classes)."""
        return self.score_layer(self.noise(self.features(x)))
