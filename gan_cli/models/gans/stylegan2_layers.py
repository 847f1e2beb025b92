"""The layers of StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), in plain
PyTorch, without the authors' custom CUDA ops:

- equalized learning rate (Karras et al. 2018): weights drawn from N(0, 1) and scaled by He's constant
  1/sqrt(fan_in) at every use, so Adam's step is the same for every layer; `lr_mul` scales a layer's rate (the
  mapping network's 0.01);
- bias and leaky ReLU (slope 0.2) with gain sqrt 2 (the authors' `bias_act`);
- weight modulation and demodulation (the paper's Section 2.2) as one grouped convolution over the batch;
- up- and downsampling with the paper's [1, 3, 3, 1] FIR filter, applied by depthwise (transposed)
  convolutions in place of the authors' upfirdn2d op. Inside the image this is the same filter; at the border
  the zero padding is placed as torch's convolutions place it, a few pixels' difference from upfirdn2d.

The equalized layers subclass nn.Linear and nn.Conv2d, so that spectral_norm, minibatch_discrimination and
feature_matching (tricks=) find them as they find any network's layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2)


def bias_act(x: Tensor, bias: Tensor | None, activation: bool, gain: float = 1.0) -> Tensor:
    """x + bias (per channel), then leaky ReLU times sqrt 2 (the gain that keeps the signal's magnitude), times
    `gain`."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    if activation:
        return F.leaky_relu(x, 0.2) * (SQRT2 * gain)
    return x * gain if gain != 1 else x


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Each row divided by its root mean square: the normalisation of z (and of a label's embedding) before the
    mapping network."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def fir_filter() -> Tensor:
    """The 2-D [1, 3, 3, 1] filter (outer product), summing to 1."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def _depthwise(kernel: Tensor, x: Tensor) -> Tensor:
    return kernel.to(x.dtype).expand(x.size(1), 1, *kernel.shape).contiguous()


def upsample2x(x: Tensor, kernel: Tensor) -> Tensor:
    """2x upsampling: zeros between the pixels, then the FIR filter with gain 4 (a transposed convolution)."""
    return F.conv_transpose2d(x, _depthwise(kernel * 4, x), stride=2, padding=1, groups=x.size(1))


def blur(x: Tensor, kernel: Tensor, padding: int) -> Tensor:
    """The FIR filter at every pixel, `padding` zero pixels around (the side grows by 2 * padding - 3)."""
    return F.conv2d(x, _depthwise(kernel, x), padding=padding, groups=x.size(1))


class EqualLinear(nn.Linear):
    """A fully connected layer with equalized learning rate: y = act(x W^T * gain + b * lr_mul), gain =
    lr_mul / sqrt(in_features); W is initialised from N(0, 1 / lr_mul^2) and b to `bias_init`."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0 / lr_mul)
            if self.bias is not None:
                self.bias.fill_(bias_init)

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.weight_gain)
        return bias_act(x, None if self.bias is None else self.bias * self.bias_gain, self.activation)


class EqualConv2d(nn.Conv2d):
    """A convolution with equalized learning rate ('same' padding), then bias, leaky ReLU and `gain`. With
    `down`, the output has half the side: the input is blurred by the FIR filter and the convolution strides by 2
    (the authors' conv2d_resample)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: bool = True, down: bool = False, gain: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.activation, self.down, self.gain = activation, down, gain
        with torch.no_grad():
            self.weight.normal_()
            if self.bias is not None:
                self.bias.zero_()
        if down:
            self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight * self.weight_gain
        k = weight.size(-1)
        if self.down:  # blurred with (k // 2 + 1) pixels of padding: side + 1 for k = 3, then stride 2
            x = F.conv2d(blur(x, self.fir, k // 2 + 1), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=k // 2)
        return bias_act(x, self.bias, self.activation, self.gain)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True) -> Tensor:
    """The paper's Eq. 1-3 as one grouped convolution: sample i is convolved with w'_i = w * s_i (the style
    scales each input channel), and with `demodulate` w''_i = w'_i / sqrt(sum w'_i^2 + 1e-8) per output channel.

    x: (N, I, H, W); weight: (O, I, k, k); styles: (N, I) -> (N, O, H, W) ('same' padding).
    """
    n, in_channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    weights = weight.unsqueeze(0) * styles.view(n, 1, in_channels, 1, 1)  # (N, O, I, k, k)
    if demodulate:
        weights = weights * (weights.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    out = F.conv2d(x.reshape(1, n * in_channels, height, width), weights.reshape(n * out_channels, in_channels, kh, kw),
                   padding=kh // 2, groups=n)
    return out.reshape(n, out_channels, *out.shape[2:])


class ModulatedConv2d(nn.Module):
    """A modulated convolution: the style s = A(w) (an equalized affine layer, bias 1) scales the input channels
    of the weight; demodulated unless it draws RGB. With `up`, the input is upsampled 2x first."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int, demodulate: bool = True,
                 up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate, self.up = demodulate, up
        if up:
            self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up:
            x = upsample2x(x, self.fir)
        return modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w), self.demodulate)


def group_size(batch: int, wanted: int) -> int:
    """The largest group of at most `wanted` samples that divides `batch` (a shape, not a tensor: no sync)."""
    return max(g for g in range(1, min(wanted, batch) + 1) if batch % g == 0)


class MinibatchStd(nn.Module):
    """The minibatch standard deviation layer (Karras et al. 2018, as StyleGAN2): the batch is split into groups
    of `group` samples; the standard deviation of each feature over a group, averaged over features and pixels
    (in `num_channels` slices), joins each sample of the group as extra channels. A batch that `group` does
    not divide uses the largest group that does."""

    def __init__(self, group: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group, self.num_channels = group, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g, f = group_size(n, self.group), self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # sample i is in group i mod (n / g)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n / g, f)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)
