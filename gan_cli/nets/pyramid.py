"""Gaussian and Laplacian image pyramids (Burt & Adelson 1983), as LAPGAN uses them (Denton et al. 2015).

`downsample` is the paper's d(.): a 5-tap binomial (Gaussian) blur, then every second pixel. `upsample` is
its u(.): bilinear interpolation to twice the size. The Laplacian pyramid of an image I keeps the coarsest
Gaussian level I_K and the band-pass residuals h_k = I_k - u(I_{k+1}); adding them back, I_k = u(I_{k+1}) + h_k,
inverts it exactly whatever d and u are.

Lists run coarse to fine: index 0 is the coarsest image, the last entry has the full size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.errors import UserError

#: 1D binomial approximation of a Gaussian (Burt & Adelson's a = 0.375 generating kernel)
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
#: no level of a pyramid is smaller than this (the blur needs 4 pixels, and a GAN below that is pointless)
MIN_SIZE = 4


def blur(images: Tensor) -> Tensor:
    """Separable 5x5 binomial blur of each channel, with reflected borders."""
    kernel = torch.tensor(_BINOMIAL, dtype=images.dtype, device=images.device)
    kernel = kernel / kernel.sum()
    channels = images.size(1)
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    rows = kernel.view(1, 1, 1, 5).expand(channels, 1, 1, 5)
    cols = kernel.view(1, 1, 5, 1).expand(channels, 1, 5, 1)
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)


def downsample(images: Tensor) -> Tensor:
    """d(.): blur, then keep every second row and column (an even size halves)."""
    return blur(images)[:, :, ::2, ::2]


def upsample(images: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
    """u(.): bilinear interpolation to `size` (default: twice the size)."""
    if size is None:
        size = (2 * images.size(2), 2 * images.size(3))
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def gaussian_pyramid(image: Tensor, levels: int) -> list[Tensor]:
    """[I_K, ..., I_1, I_0 = image]: `levels` images, coarse to fine, each half the size of the next."""
    _check_divisible(image, levels)
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(downsample(pyramid[-1]))
    return pyramid[::-1]


def pyramid_sizes(image_size: int, levels: int | None = None, coarsest_size: int = 8) -> list[int]:
    """The side of each level, coarse to fine.

    `levels=None` halves `image_size` for as long as the half is a whole number of at least `coarsest_size`
    (32 px with coarsest_size=8: [8, 16, 32]; 28 px: [14, 28]). An explicit count must leave a coarsest
    level image_size / 2^(levels-1) that is a whole number of at least 4 pixels.
    """
    if image_size < MIN_SIZE:
        raise UserError(f"LAPGAN needs images of at least {MIN_SIZE} px (data.image_size={image_size}).")
    if levels is None:
        floor = max(coarsest_size, MIN_SIZE)
        sizes = [image_size]
        while sizes[-1] % 2 == 0 and sizes[-1] // 2 >= floor:
            sizes.append(sizes[-1] // 2)
        return sizes[::-1]
    most = len(pyramid_sizes(image_size, None, MIN_SIZE))
    hint = f"Use model.levels between 1 and {most}, or model.levels=null to choose from model.coarsest_size."
    if levels < 1:
        raise UserError(f"model.levels={levels}: a pyramid has at least one level. {hint}")
    coarsest = image_size / 2 ** (levels - 1)
    if coarsest != int(coarsest) or coarsest < MIN_SIZE:
        raise UserError(
            f"model.levels={levels} does not fit data.image_size={image_size}: the coarsest level would be "
            f"{image_size} / 2^{levels - 1} = {coarsest:g} px, and it must be a whole number of at least "
            f"{MIN_SIZE} px. {hint}"
        )
    return [image_size // 2 ** k for k in range(levels - 1, -1, -1)]


def _check_divisible(image: Tensor, levels: int) -> None:
    factor = 2 ** (levels - 1)
    height, width = image.shape[-2:]
    if levels < 1 or height % factor or width % factor or min(height, width) // factor < MIN_SIZE:
        raise ValueError(f"a {levels}-level pyramid needs a side divisible by {factor} with at least "
                         f"{MIN_SIZE} px left at the coarsest level; got {height}x{width}")
