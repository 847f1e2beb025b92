"""CapsNet's layers (Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules").

A capsule is a vector whose length is the probability that an entity is present and whose direction
describes it. `CapsuleNetwork` is the paper's encoder: a 9x9 ReLU convolution (256 channels), primary
capsules (a 9x9 stride-2 convolution read as 32 channels of 8-D capsules, squashed) and one 16-D digit
capsule per class, reached by routing by agreement. `CapsuleDecoder` reconstructs the image from the digit
capsules masked to one class. At the paper's settings and 28x28 input the encoder has 6,804,224 parameters
and the decoder 1,411,344 (8,215,568 together), as the reference layout counts: no routing biases.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.errors import UserError

#: keeps the gradient of |s| finite at s = 0
EPS = 1e-8


def squash(s: Tensor, dim: int = -1) -> Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|: short vectors shrink to almost zero, long ones to just below 1."""
    squared = (s * s).sum(dim, keepdim=True)
    return s * (squared / (1 + squared)) / torch.sqrt(squared + EPS)


def conv_output_size(size: int, kernel_size: int, stride: int = 1) -> int:
    """The side of a square map after an unpadded convolution."""
    return (size - kernel_size) // stride + 1


class PrimaryCapsules(nn.Module):
    """A `kernel_size` stride-2 convolution whose `capsules * dim` output channels are read as `capsules`
    channels of `dim`-D capsule vectors at every position, each squashed: (N, C, H, W) -> (N, capsules*h*w, dim).
    """

    def __init__(self, in_channels: int = 256, capsules: int = 32, dim: int = 8, kernel_size: int = 9,
                 stride: int = 2) -> None:
        super().__init__()
        self.capsules, self.dim = capsules, dim
        self.conv = nn.Conv2d(in_channels, capsules * dim, kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        n, _, height, width = out.shape
        # channel c * dim + k is component k of capsule channel c (the reference's layout); positions vary fastest
        out = out.view(n, self.capsules, self.dim, height, width).permute(0, 1, 3, 4, 2)
        return squash(out.reshape(n, self.capsules * height * width, self.dim))


class DigitCapsules(nn.Module):
    """`num_classes` capsules of `dim` dimensions, each a routed sum of the predictions u_hat_j|i = W_ij u_i
    of all `in_capsules` capsules below.

    Routing by agreement (the paper's Procedure 1): b_ij = 0; then `routing_iterations` times:
    c_ij = softmax_j(b_ij) (over the parent capsules j), s_j = sum_i c_ij u_hat_j|i, v_j = squash(s_j),
    and, except after the last, b_ij += u_hat_j|i . v_j. Returns (v, c): v (N, num_classes, dim) and the
    coupling coefficients c (N, in_capsules, num_classes) of the last iteration.
    """

    def __init__(self, in_capsules: int, in_dim: int = 8, num_classes: int = 10, dim: int = 16,
                 routing_iterations: int = 3) -> None:
        super().__init__()
        if routing_iterations < 1:
            raise UserError(f"model.network.routing_iterations={routing_iterations}: routing needs at least 1 "
                            "iteration (1 couples every capsule uniformly to all parents; the paper uses 3).")
        self.routing_iterations = routing_iterations
        # truncated normal with std 0.1, the reference code's weight initialiser
        self.weight = nn.Parameter(nn.init.trunc_normal_(torch.empty(in_capsules, num_classes, dim, in_dim),
                                                         std=0.1, a=-0.2, b=0.2))

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        u_hat = torch.einsum("ijdk,nik->nijd", self.weight, u)  # (N, in_capsules, num_classes, dim)
        logits = u.new_zeros(u_hat.shape[:3])
        for iteration in range(self.routing_iterations):
            coupling = logits.softmax(dim=2)
            v = squash(torch.einsum("nij,nijd->njd", coupling, u_hat))
            if iteration < self.routing_iterations - 1:
                logits = logits + torch.einsum("nijd,njd->nij", u_hat, v)
        return v, coupling


class CapsuleNetwork(nn.Module):
    """The paper's encoder: images in [0, 1] -> digit capsules (N, num_classes, digit_dim), whose lengths are
    the class scores. The coupling coefficients of the last forward are kept in `last_coupling`."""

    def __init__(self, channels: PositiveInt = 1, image_size: PositiveInt = 28, num_classes: int = 10,
                 conv_channels: int = 256, kernel_size: int = 9, primary_capsules: int = 32, primary_dim: int = 8,
                 digit_dim: int = 16, routing_iterations: int = 3) -> None:
        super().__init__()
        grid = conv_output_size(conv_output_size(image_size, kernel_size), kernel_size, stride=2)
        if grid < 1:
            raise UserError(f"model=capsnet needs data.image_size >= {2 * kernel_size - 1}: its two unpadded "
                            f"{kernel_size}x{kernel_size} convolutions (the second of stride 2) leave nothing of a "
                            f"{image_size} px image. Set data.image_size=28 (the paper's MNIST size) or larger.")
        if num_classes < 2:
            raise UserError(f"model=capsnet has one digit capsule per class, and this data has data.num_classes="
                            f"{num_classes}. Use labelled data (data=mnist_5k, mnist, fashion_mnist, cifar10).")
        self.channels, self.image_size, self.num_classes, self.digit_dim = channels, image_size, num_classes, digit_dim
        self.conv = nn.Sequential(nn.Conv2d(channels, conv_channels, kernel_size), nn.ReLU(inplace=True))
        self.primary = PrimaryCapsules(conv_channels, primary_capsules, primary_dim, kernel_size)
        self.digits = DigitCapsules(primary_capsules * grid * grid, primary_dim, num_classes, digit_dim,
                                    routing_iterations)
        self.last_coupling: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        capsules, coupling = self.digits(self.primary(self.conv(images)))
        self.last_coupling = coupling.detach()
        return capsules


def mask(capsules: Tensor, classes: Tensor) -> Tensor:
    """The digit capsules (N, K, D) with all but each row's class zeroed, flattened to (N, K * D)."""
    keep = F.one_hot(classes, capsules.size(1)).to(capsules.dtype)
    return (capsules * keep.unsqueeze(-1)).flatten(1)


class CapsuleDecoder(nn.Module):
    """Fully connected ReLU layers (`hidden`, the paper's 512 and 1024) from the masked digit capsules to
    the image's pixels, sigmoid: a reconstruction in [0, 1]."""

    def __init__(self, num_classes: int = 10, digit_dim: int = 16, channels: PositiveInt = 1,
                 image_size: PositiveInt = 28, hidden: Sequence[int] = (512, 1024)) -> None:
        super().__init__()
        self.shape = (channels, image_size, image_size)
        widths = [num_classes * digit_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.Linear(widths[-1], channels * image_size * image_size), nn.Sigmoid())

    def forward(self, capsules: Tensor, classes: Tensor) -> Tensor:
        """Images (N, C, H, W) in [0, 1] decoded from the capsule of `classes` (the true class in training,
        the longest capsule at test time)."""
        return self.body(mask(capsules, classes)).view(-1, *self.shape)
