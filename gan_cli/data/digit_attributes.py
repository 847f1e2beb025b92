"""Measured attributes of handwritten digits: stroke thickness, slant and size.

The captions of `data=mnist_5k_captions` are written from these measures, and the text-to-image benchmarks
measure generated digits with the same functions, so "thick" means the same thing in both places.

Every function takes images with bright ink on a dark ground, values in [0, 1] (`datamodule.denormalize(x)`),
shaped (N, 1, H, W) or (N, H, W), and returns one value per image, in pixels of the given resolution.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: ink above this level counts as part of the digit for its bounding box
INK_LEVEL = 0.3


def _planes(images: Tensor) -> Tensor:
    """(N, H, W) float ink planes; colour images are averaged over channels."""
    if images.dim() == 4:
        images = images.mean(1)
    if images.dim() != 3:
        raise ValueError(f"expected images shaped (N, C, H, W) or (N, H, W), got {tuple(images.shape)}")
    return images.float().clamp(0, 1)


def thickness(images: Tensor) -> Tensor:
    """Mean stroke width: 2 * ink area / ink perimeter.

    A stroke of length L and width w has area L*w and perimeter about 2L, so the ratio is w. The perimeter
    is the total variation of the ink (the summed gradient magnitude), which measures it on grey levels and
    anti-aliased edges as well as on binary strokes.
    """
    ink = _planes(images)
    padded = torch.nn.functional.pad(ink, (1, 1, 1, 1))  # forward differences: each edge counted once
    dx = padded[:, 1:, 1:] - padded[:, 1:, :-1]
    dy = padded[:, 1:, 1:] - padded[:, :-1, 1:]
    perimeter = torch.sqrt(dx ** 2 + dy ** 2).sum((1, 2))
    area = ink.sum((1, 2))
    return 2 * area / perimeter.clamp_min(1e-6)


def _moments(ink: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Ink mass, and centred second moments mu_xy, mu_yy (y grows downwards) per image."""
    n, h, w = ink.shape
    ys = torch.arange(h, dtype=ink.dtype).view(1, h, 1)
    xs = torch.arange(w, dtype=ink.dtype).view(1, 1, w)
    mass = ink.sum((1, 2)).clamp_min(1e-6)
    cy = (ink * ys).sum((1, 2)) / mass
    cx = (ink * xs).sum((1, 2)) / mass
    dy = ys - cy.view(n, 1, 1)
    dx = xs - cx.view(n, 1, 1)
    return mass, (ink * dx * dy).sum((1, 2)) / mass, (ink * dy * dy).sum((1, 2)) / mass, cx


def slant(images: Tensor) -> Tensor:
    """The shear of the ink from its image moments: horizontal shift per pixel of height, -mu_xy / mu_yy.

    Positive: the top of the digit lies to the right of its bottom (leaning right); 0: upright. This is the
    shear that deskewing MNIST removes (x' = x - slant * (y - cy) makes the digit upright).
    """
    _, mu_xy, mu_yy, _ = _moments(_planes(images))
    return -mu_xy / mu_yy.clamp_min(1e-6)


def _extent(mask: Tensor) -> Tensor:
    """Number of rows from the first to the last True row of each (N, H) mask; 0 where none is True."""
    h = mask.shape[1]
    index = torch.arange(h).expand_as(mask)
    first = torch.where(mask, index, h).min(1).values
    last = torch.where(mask, index, -1).max(1).values
    return (last - first + 1).clamp_min(0).float()


def size(images: Tensor) -> Tensor:
    """Side of the square with the area of the ink's bounding box, sqrt(height * width), in pixels (ink:
    pixels brighter than INK_LEVEL); 0 for an empty image. MNIST scaled every digit to the same box height,
    so the height alone hardly varies; the box area does."""
    ink = _planes(images) > INK_LEVEL
    return torch.sqrt(_extent(ink.any(2)) * _extent(ink.any(1)))


def measure(images: Tensor) -> dict[str, Tensor]:
    """All three measures: {"thickness", "slant", "size"}, each (N,)."""
    return {"thickness": thickness(images), "slant": slant(images), "size": size(images)}
