"""A small convolutional image classifier: the digit classifier that judges generated images.

Its hidden fully connected layer is the feature layer: `features()` gives those activations (the space in
which Fréchet distances between real and generated digits are measured), `forward()` the class logits.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt


class ConvClassifier(nn.Module):
    """Blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling (one block per entry of `widths`),
    then a hidden ReLU layer of `hidden` units (the features) and, after dropout, a linear layer to
    `num_classes` logits.

    With `num_classes=0` there is no output layer and `forward()` returns the features (as timm's
    `num_classes=0`): the network builds for unlabelled data, and the model that trains it says what is wrong.
    """

    def __init__(self, channels: PositiveInt = 1, image_size: PositiveInt = 32, num_classes: int = 10,
                 widths: Sequence[int] = (32, 64, 128, 256), hidden: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        if image_size < 2 ** len(widths):
            raise ValueError(f"ConvClassifier halves the image {len(widths)} times (one block per width), "
                             f"so it needs image_size >= {2 ** len(widths)} (got {image_size})")
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.feature_dim = hidden
        layers: list[nn.Module] = []
        width, size = channels, image_size
        for out in widths:
            layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            width, size = out, size // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(width * size * size, hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes)) if num_classes else nn.Identity()

    def features(self, x: Tensor) -> Tensor:
        """The hidden layer's activations, (N, feature_dim)."""
        return self.hidden(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, (N, num_classes)."""
        return self.head(self.features(x))
