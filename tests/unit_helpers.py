"""Stand-in networks for UNIT's objective (tests/test_unit.py) and its refusals (tests/test_unit_training.py):
with them every term of the objective is known by hand."""

from __future__ import annotations

import torch
from torch import nn

from gan_cli.losses import LeastSquaresLoss
from gan_cli.models.translation.unit import UNIT


class Flip(nn.Module):
    """A stand-in UNITGenerator: encodes by identity, decodes as A by identity and as B by negation; the latent
    noise is a constant 0.5. Every term of the objective is then known by hand. Records its calls."""

    latent_channels = 3

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[str, str, torch.Tensor]] = []

    def encode(self, x, domain):
        self.calls.append(("encode", domain, x))
        return x.clone()

    def decode(self, z, domain):
        self.calls.append(("decode", domain, z))
        return z.clone() if domain == "A" else -z

    @staticmethod
    def sample(mu):
        return mu + 0.5


class Constant(nn.Module):
    """A 'discriminator' scoring every patch 1 (real for least squares: no adversarial loss); remembers its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x)
        return torch.ones(x.size(0), 1, 2, 2)


def stand_in_unit(**kwargs) -> UNIT:
    return UNIT(generator=Flip, discriminator=Constant, loss=LeastSquaresLoss(),
                optimizer=lambda p, lr: torch.optim.Adam(p, lr=lr), **kwargs)
