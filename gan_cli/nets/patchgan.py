"""PatchGAN discriminator of pix2pix / CycleGAN (Isola et al. 2017; Zhu et al. 2017).

Follows NLayerDiscriminator of junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py): it scores
overlapping patches (70x70 for n_layers=3) and returns a map of raw scores, one per patch (30x30 at
256 px). Parameter counts equal the reference (2,764,737 with 3 input channels and instance norm,
2,768,705 with 6 input channels and batch norm, at ndf=64).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.norm import conv_bias, init_weights_, norm_layer

KERNEL, PADDING = 4, 1


class _Conv(NamedTuple):
    in_channels: int
    out_channels: int
    stride: int
    hidden: bool  # followed by LeakyReLU (and a norm unless it is the first layer)


def _plan(channels: int, ndf: int, n_layers: int) -> list[_Conv]:
    """The convolutions in order: n_layers stride-2 ones, one stride-1, then the stride-1 output conv."""
    if n_layers < 1:
        raise ValueError(f"PatchGAN needs n_layers >= 1 (got {n_layers})")
    widths = [channels] + [ndf * min(2 ** n, 8) for n in range(n_layers + 1)]
    convs = [_Conv(widths[n], widths[n + 1], 2 if n < n_layers else 1, True) for n in range(n_layers + 1)]
    return convs + [_Conv(widths[-1], 1, 1, False)]


def receptive_field(n_layers: int = 3) -> int:
    """Side of the input patch that one output score sees, from the kernels and strides of the plan."""
    field = 1
    for conv in reversed(_plan(1, 1, n_layers)):
        field = (field - 1) * conv.stride + KERNEL
    return field


class PatchGANDiscriminator(nn.Module):
    """Conv4x4 layers with LeakyReLU(0.2); a norm on every hidden layer but the first; no sigmoid."""

    def __init__(self, channels: PositiveInt = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for n, conv in enumerate(_plan(channels, ndf, n_layers)):
            normed = conv.hidden and n > 0
            # a conv not followed by a norm (the first and the last) keeps its bias
            bias = conv_bias(norm) if normed else True
            layers.append(nn.Conv2d(conv.in_channels, conv.out_channels, KERNEL, conv.stride, PADDING, bias=bias))
            if normed:
                layers.append(norm_layer(norm, conv.out_channels))
            if conv.hidden:
                layers.append(nn.LeakyReLU(0.2, True))
        self.model = nn.Sequential(*layers)
        self.receptive_field = receptive_field(n_layers)
        init_weights_(self)  # the reference's define_D default: normal(0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
