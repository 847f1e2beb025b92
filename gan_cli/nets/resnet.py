"""ResNet-based image-to-image generator of CycleGAN (Zhu et al. 2017), after Johnson et al. 2016.

Follows ResnetGenerator / ResnetBlock of junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py) with
reflection padding; parameter counts equal the reference ('resnet_9blocks': 11,378,179,
'resnet_6blocks': 7,837,699 at ngf=64, 3 channels, instance norm).
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.norm import conv_bias, init_weights_, norm_layer

N_DOWNSAMPLING = 2


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, norm, ReLU, (dropout), pad, conv3x3, norm](x)."""

    def __init__(self, dim: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias),
                                   norm_layer(norm, dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 downsamplings, `n_blocks` residual blocks, two upsamplings, 7x7 conv, Tanh.

    The output has the input's height and width, which must be multiples of `size_multiple`.
    """

    size_multiple = 2 ** N_DOWNSAMPLING

    def __init__(self, channels: PositiveInt = 3, out_channels: int | None = None, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0 (got {n_blocks})")
        out_channels = channels if out_channels is None else out_channels
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        width = ngf
        for _ in range(N_DOWNSAMPLING):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResnetBlock(width, norm, dropout) for _ in range(n_blocks)]
        for _ in range(N_DOWNSAMPLING):
            # output_padding=1 makes each transposed conv exactly double the size (k3, s2, p1)
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights_(self)  # the reference's define_G default: normal(0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"ResnetGenerator needs height and width that are multiples of "
                             f"{self.size_multiple} (got {tuple(x.shape[-2:])})")
        return self.model(x)
