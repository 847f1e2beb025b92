"""The last layers of a conditional discriminator: image features (B, C, H, W) and a condition code (B, K)
in, one score per image out. The lecture's two ways (`condition_style`):

- `joint`: the condition code is replicated over the feature map and concatenated to it, then one network
  (1x1 convolution + batch norm + LeakyReLU, then a convolution over the whole map) gives one score: Reed et
  al. 2016's discriminator (codes joined at 4x4);
- `separate`: a realism score from the image features alone, plus a match score from the image features and
  the condition, summed into the logit. The match score is an inner product of the flattened features with a
  linear projection of the condition (the projection discriminator of Miyato & Koyama 2018), so the realism
  score is exactly the unconditional discriminator's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt

CONDITION_STYLES = ("joint", "separate")


def check_condition_style(style: str) -> str:
    if style not in CONDITION_STYLES:
        raise ValueError(f"condition_style must be 'joint' (one network on the joined image and condition codes) "
                         f"or 'separate' (a realism score plus a match score), not {style!r}")
    return style


class ConditionalHead(nn.Module):
    """Scores (B,) for features (B, channels, size, size) and condition codes (B, condition_dim)."""

    def __init__(self, channels: PositiveInt, condition_dim: int, condition_style: str = "joint",
                 size: int = 4) -> None:
        super().__init__()
        self.condition_style = check_condition_style(condition_style)
        self.channels, self.condition_dim, self.size = channels, condition_dim, size
        if condition_style == "joint":
            self.joint = nn.Sequential(nn.Conv2d(channels + condition_dim, channels, 1, 1, 0, bias=False),
                                       nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True))
        else:
            self.projection = nn.Linear(condition_dim, channels * size * size, bias=False)
        #: the realism (separate) or joint (joint) score: a convolution over the whole size x size map
        self.score = nn.Conv2d(channels, 1, size, 1, 0, bias=False)

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        condition = condition.to(features.dtype)
        if self.condition_style == "joint":
            maps = condition[:, :, None, None].expand(-1, -1, features.size(2), features.size(3))
            return self.score(self.joint(torch.cat([features, maps], dim=1))).flatten()
        return self.score(features).flatten() + self.match(features, condition)

    def match(self, features: Tensor, condition: Tensor) -> Tensor:
        """The match score <V c, features> of the separate style."""
        return (self.projection(condition) * features.flatten(1)).sum(dim=1)
