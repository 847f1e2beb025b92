"""Seeded random inputs for the trick-layer tests (tests/test_trick_layers.py, tests/test_diffaugment.py)."""

from __future__ import annotations

import torch
from torch import Tensor


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=seeded(seed))


def images(n: int, channels: int = 3, size: int = 16, seed: int = 0) -> Tensor:
    """A batch in the data range [-1, 1]."""
    return torch.rand(n, channels, size, size, generator=seeded(seed)) * 2 - 1
