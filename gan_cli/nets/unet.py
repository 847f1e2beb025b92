"""U-Net generator of pix2pix (Isola et al. 2017), after Ronneberger et al. 2015.

Follows UnetGenerator / UnetSkipConnectionBlock of junyanz/pytorch-CycleGAN-and-pix2pix
(models/networks.py), written as a list of levels instead of nested blocks: level 0 is the outermost,
the last one the innermost (the bottleneck, 1x1 at an input of 2**num_downs px). Level k halves the
size on the way down and doubles it on the way up; its input on the way up is the encoder feature it
produced joined (concatenated) with the decoder output of level k+1. Parameter counts equal the
reference ('unet_256': 54,413,955, 'unet_128': 41,828,995 at ngf=64, 3 channels, batch norm).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.norm import conv_bias, init_weights_, norm_layer

MIN_DOWNS = 5  # the fixed ngf, 2ngf, 4ngf, 8ngf encoder widths plus the innermost level


class UnetLevel(nn.Module):
    """One U-Net level: `down` (outer_nc or in_channels -> inner_nc, half size) and `up` (-> outer_nc).

    down: [LeakyReLU 0.2], conv4x4/2, [norm]; up: ReLU, transposed conv4x4/2, norm or Tanh, [dropout 0.5].
    The outermost level has no activation before its first conv and no norm; the innermost has no norm
    on the way down, and its `up` sees only its own `down` output (no skip below it).
    """

    def __init__(self, outer_nc: int, inner_nc: int, norm: str, *, in_channels: int | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        down: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2)]
        down.append(nn.Conv2d(in_channels or outer_nc, inner_nc, 4, stride=2, padding=1, bias=bias))
        if not (outermost or innermost):
            down.append(norm_layer(norm, inner_nc))
        up_in = inner_nc if innermost else inner_nc * 2
        # the output layer keeps its bias whatever the norm, as in the reference
        up: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer_nc, 4, stride=2, padding=1,
                                                             bias=bias or outermost)]
        up.append(nn.Tanh() if outermost else norm_layer(norm, outer_nc))
        if dropout:
            up.append(nn.Dropout(0.5))
        self.down, self.up = nn.Sequential(*down), nn.Sequential(*up)


class UnetGenerator(nn.Module):
    """`num_downs` levels; inputs must be multiples of `size_multiple` = 2**num_downs in height and width.

    The encoder widths are ngf, 2ngf, 4ngf, 8ngf, then 8ngf for the remaining levels; the num_downs-5
    intermediate 8ngf levels (neither the innermost nor the 4 outer ones) have dropout when `dropout`.
    """

    def __init__(self, channels: PositiveInt = 3, out_channels: int | None = None, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True) -> None:
        super().__init__()
        if num_downs < MIN_DOWNS:
            raise ValueError(f"UnetGenerator needs num_downs >= {MIN_DOWNS} (got {num_downs})")
        out_channels = channels if out_channels is None else out_channels
        self.size_multiple = 2 ** num_downs
        widths = [ngf * min(2 ** k, 8) for k in range(num_downs)]  # inner_nc of each level
        levels = [UnetLevel(out_channels, widths[0], norm, in_channels=channels, outermost=True)]
        for k in range(1, num_downs):
            innermost = k == num_downs - 1
            levels.append(UnetLevel(widths[k - 1], widths[k], norm, innermost=innermost,
                                    dropout=dropout and 4 <= k and not innermost))
        self.levels = nn.ModuleList(levels)
        init_weights_(self)  # the reference's define_G default: normal(0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"UnetGenerator needs height and width that are multiples of "
                             f"{self.size_multiple} (got {tuple(x.shape[-2:])})")
        features = [x]  # features[k + 1] = output of level k's down path
        for level in self.levels:
            features.append(level.down(features[-1]))
        h = self.levels[-1].up(features[-1])
        for k in range(len(self.levels) - 2, -1, -1):
            # encoder feature first, as the reference's torch.cat([x, model(x)], 1)
            h = self.levels[k].up(torch.cat([features[k + 1], h], dim=1))
        return h
