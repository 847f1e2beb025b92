"""StyleGAN2's networks (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"; the
layouts of the authors' StyleGAN2-ADA code, configuration F): the mapping network, the synthesis network with
skip connections to RGB, and the residual discriminator. Their layers are in stylegan2_layers.

Channels at each resolution r are min(channel_base // r, channel_max), as the authors count them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.models.gans.stylegan2_layers import (
    EqualConv2d,
    EqualLinear,
    MinibatchStd,
    ModulatedConv2d,
    bias_act,
    fir_filter,
    normalize_2nd_moment,
    upsample2x,
)


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


def broadcast(w: Tensor, num_ws: int) -> Tensor:
    """(N, w_dim) -> (N, num_ws, w_dim): the same w for every layer."""
    return w.unsqueeze(1).expand(-1, num_ws, -1)


class MappingNetwork(nn.Module):
    """f: z -> w. z is normalised to unit root mean square; a label (class-conditional) is embedded, normalised
    and joined to it; then `layers` fully connected layers with leaky ReLU, at `lr_mul` times the learning rate.

    With `w_avg_beta`, the buffer `w_avg` is the moving average of the w's it is given by `track` (the centre
    of the truncation trick). With latent_dim 0 it maps labels alone (the discriminator's projection).
    """

    def __init__(self, latent_dim: int = 512, w_dim: int = 512, num_classes: int = 0, layers: int = 8,
                 lr_mul: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        self.latent_dim, self.w_dim, self.num_classes = latent_dim, w_dim, num_classes
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        features = [latent_dim + (w_dim if num_classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activation=True)
                                   for a, b in zip(features[:-1], features[1:])])
        self.w_avg_beta = w_avg_beta
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor | None, labels: Tensor | None = None) -> Tensor:
        parts = [normalize_2nd_moment(z)] if self.latent_dim else []
        if self.embed is not None:
            one_hot = F.one_hot(labels, self.num_classes).to(self.embed.weight.dtype)
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        return self.net(torch.cat(parts, dim=1))

    @torch.no_grad()
    def track(self, w: Tensor) -> None:
        """w_avg <- beta * w_avg + (1 - beta) * mean(w), on the device."""
        self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """The truncation trick in W: w_avg + psi (w - w_avg) (psi 0: the average w; 1: w itself)."""
        return self.w_avg.lerp(w, psi)


class SynthesisLayer(nn.Module):
    """A modulated 3x3 convolution, per-pixel noise times a learned strength (0 at first), bias, leaky ReLU.
    In training the noise is drawn anew; in eval mode it is the layer's fixed noise image (a buffer), so that a
    given w always gives the same image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, 3, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = self.conv(x, w)
        if self.training:
            noise = torch.randn(x.size(0), 1, x.size(2), x.size(3), device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        return bias_act(x + noise * self.noise_strength, self.bias, activation=True)


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to the image's channels (not demodulated), plus bias."""

    def __init__(self, in_channels: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, channels, w_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return bias_act(self.conv(x, w), self.bias, activation=False)


class SynthesisBlock(nn.Module):
    """One resolution: (the learned 4x4 constant, or an upsampling layer) and a layer, then toRGB, whose image is
    added to the upsampled image so far (the skip architecture of the paper's Figure 7). Takes num_conv + 1 w's:
    toRGB shares its w with the next block's first layer, as the authors index them."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, channels: int) -> None:
        super().__init__()
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
            self.register_buffer("fir", fir_filter(), persistent=False)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, channels, w_dim)
        self.num_conv = 1 if self.conv0 is None else 2

    def forward(self, x: Tensor | None, image: Tensor | None, ws: Tensor) -> tuple[Tensor, Tensor]:
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.size(0), -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, 0])
        x = self.conv1(x, ws[:, self.num_conv - 1])
        rgb = self.torgb(x, ws[:, self.num_conv])
        return x, rgb if image is None else upsample2x(image, self.fir) + rgb


class SynthesisNetwork(nn.Module):
    """g: ws (N, num_ws, w_dim) -> images (N, channels, image_size, image_size), 4x4 up to image_size."""

    def __init__(self, w_dim: int, image_size: int, channels: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        resolutions = [2**i for i in range(2, int(math.log2(image_size)) + 1)]
        self.blocks = nn.ModuleList([
            SynthesisBlock(channels_at(r // 2, channel_base, channel_max) if r > 4 else 0,
                           channels_at(r, channel_base, channel_max), w_dim, r, channels) for r in resolutions])
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(self, ws: Tensor) -> Tensor:
        x = image = None
        first = 0
        for block in self.blocks:
            x, image = block(x, image, ws.narrow(1, first, block.num_conv + 1))
            first += block.num_conv
        return image


class Generator(nn.Module):
    """G(z | label) = synthesis(mapping(z, label)) with the same w at every layer; `truncation` psi moves w
    towards the mapping's average w first (psi 0: the average image)."""

    def __init__(self, image_size: int, channels: int, channel_base: int, channel_max: int, latent_dim: int = 512,
                 w_dim: int = 512, num_classes: int = 0, mapping_layers: int = 8, mapping_lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.mapping = MappingNetwork(latent_dim, w_dim, num_classes, mapping_layers, mapping_lr_mul, w_avg_beta)
        self.synthesis = SynthesisNetwork(w_dim, image_size, channels, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws

    def forward(self, z: Tensor, labels: Tensor | None = None, truncation: float | None = None) -> Tensor:
        w = self.mapping(z, labels)
        if truncation is not None:
            w = self.mapping.truncate(w, truncation)
        return self.synthesis(broadcast(w, self.num_ws))


class DiscriminatorBlock(nn.Module):
    """A residual block (the paper's Figure 7c): two 3x3 convolutions, the second halving the side, plus a 1x1
    downsampling skip, the sum scaled by sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=True, gain=math.sqrt(0.5))
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, activation=False, down=True,
                                gain=math.sqrt(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


class Discriminator(nn.Module):
    """D(x | label): fromRGB at full resolution, residual blocks down to 4x4, then minibatch standard deviation,
    a 3x3 convolution, a fully connected layer and the score. Class-conditional as in StyleGAN2-ADA: the last
    layer gives a vector that is projected onto the label's embedding (a mapping network of the label)."""

    def __init__(self, image_size: int, channels: int, channel_base: int, channel_max: int, num_classes: int = 0,
                 mbstd_group: int = 4, mbstd_channels: int = 1, mapping_layers: int = 8) -> None:
        super().__init__()
        width = lambda r: channels_at(r, channel_base, channel_max)  # noqa: E731
        resolutions = [2**i for i in range(int(math.log2(image_size)), 2, -1)]
        self.from_rgb = EqualConv2d(channels, width(image_size), 1)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(width(r), width(r // 2)) for r in resolutions])
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels)
        self.conv = EqualConv2d(width(4) + mbstd_channels, width(4), 3)
        self.fc = EqualLinear(width(4) * 16, width(4), activation=True)
        self.cmap_dim = width(4) if num_classes else 0
        self.score_layer = EqualLinear(width(4), self.cmap_dim or 1)
        self.mapping = MappingNetwork(0, self.cmap_dim, num_classes, mapping_layers, w_avg_beta=None) \
            if num_classes else None

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        x = self.blocks(self.from_rgb(images))
        x = self.fc(self.conv(self.mbstd(x)).flatten(1))
        scores = self.score_layer(x)
        if self.mapping is not None:
            scores = (scores * self.mapping(None, labels)).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return scores.squeeze(1)
