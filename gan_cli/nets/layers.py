"""Small layers and helpers shared by several networks."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): the maximum over `pieces` linear pieces per unit."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.size(0), self.out_features, self.pieces).amax(dim=2)


def one_hot(labels: Tensor | None, num_classes: int) -> Tensor | None:
    """Float one-hot codes of integer labels; labels that are already vectors pass through."""
    if labels is None or num_classes == 0:
        return None
    if labels.dim() > 1:
        return labels.float()
    return nn.functional.one_hot(labels.long(), num_classes).float()


def require_condition(condition: Tensor | None, num_classes: int, who: str) -> None:
    if num_classes and condition is None:
        raise ValueError(f"{who} is class-conditional ({num_classes} classes) and needs labels")


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al. 2015: all weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def join(x: Tensor, condition: Tensor | None) -> Tensor:
    """Concatenate a condition vector to a flat input (Mirza & Osindero: y joined to z and to x)."""
    return x if condition is None else torch.cat([x, condition.to(x.dtype)], dim=1)
