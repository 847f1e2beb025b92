"""The Gaussian-Poisson equation of GP-GAN (Wu et al. 2017), solved in closed form on a pyramid.

At one scale, with d = div v the divergence of the guidance field (`operators.guidance_divergence`: src's
gradients inside the mask, dst's outside, their mean across the seam, as in the authors' gp_gan.py),
t the colour image and G a Gaussian filter (sigma 0.5 as in the authors' code), x minimises the paper's

    H(x) = ||Laplacian x - d||^2 + beta ||G x - G t||^2                              (form="paper")

whose normal equations (L^2 + beta G^2) x = L d + beta G^2 t are diagonal in the DCT-II basis (Neumann
Laplacian L, mirrored Gaussian). form="authors" solves instead the equation the authors' code solves,
(-L + beta G) x = -d + beta G t. The paper's colour target x_l is taken as G t (the colour image seen
through the same Gaussian as x), which makes an image whose gradients and colours agree an exact fixed point.

Coarse to fine (the paper's Laplacian pyramid): src, dst and the mask are brought down by the pyramid of
gan_cli.nets.pyramid (5-tap binomial blur, sigma 1 as the authors' smooth_sigma, then every second pixel);
at the coarsest scale t is the low-resolution blend (the Blending GAN's output, resized to that scale);
at each finer scale t is the previous scale's result upsampled plus, with `details=True`, that scale's
Laplacian band taken from src inside the mask and from dst outside (the detail the coarser scale could
not hold). With details=False t is only the upsampled result, as in the authors' code.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from gan_cli.blending.images import Image, give_back, read_image, read_mask, same_size
from gan_cli.blending.operators import (
    dct2,
    gaussian_eigenvalues,
    guidance_divergence,
    idct2,
    laplacian_eigenvalues,
)
from gan_cli.errors import UserError
from gan_cli.nets.pyramid import MIN_SIZE, downsample, upsample

FORMS = ("paper", "authors")


def solve_scale(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, colour: np.ndarray, beta: float,
                sigma: float, form: str) -> np.ndarray:
    """The Gaussian-Poisson solution at one scale (C x H x W float64 arrays, H x W bool mask)."""
    height, width = mask.shape
    laplacian = laplacian_eigenvalues(height, width)
    gaussian = gaussian_eigenvalues(height, width, sigma)
    guidance, target = dct2(guidance_divergence(src, dst, mask)), dct2(colour)
    if form == "paper":
        numerator = laplacian * guidance + beta * gaussian**2 * target
        denominator = laplacian**2 + beta * gaussian**2
    else:
        numerator = beta * gaussian * target - guidance
        denominator = beta * gaussian - laplacian
        if denominator.min() <= 1e-12:
            raise UserError(f"form=authors with beta={beta} and sigma={sigma} makes the equation singular (the "
                            f"Gaussian's spectrum turns negative); use a smaller sigma or form=paper.")
    return idct2(numerator / denominator)


def level_sizes(height: int, width: int, levels: int | None = None,
                low_res_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """The (H, W) of each scale, coarse to fine; each is the next one halved (rounded up).

    levels=None halves until the longer side is no longer than the low-resolution blend's (the authors'
    ceil(log2(size / image_size)) halvings), as long as the coarsest side keeps MIN_SIZE pixels.
    """
    sizes = [(height, width)]
    if levels is None:
        goal = max(low_res_size) if low_res_size else max(height, width)
        while max(sizes[-1]) > goal and min(_half(sizes[-1])) >= MIN_SIZE:
            sizes.append(_half(sizes[-1]))
        return sizes[::-1]
    if levels < 1:
        raise UserError(f"levels={levels}: the pyramid needs at least one scale (levels=1 solves at full size only).")
    for _ in range(levels - 1):
        sizes.append(_half(sizes[-1]))
    if levels > 1 and min(sizes[-1]) < MIN_SIZE:
        most = len(level_sizes(height, width, None, (1, 1)))
        raise UserError(f"levels={levels} is too many for a {height}x{width} image: the coarsest scale would be "
                        f"{sizes[-1][0]}x{sizes[-1][1]}, under {MIN_SIZE} px. Use levels between 1 and {most}, "
                        f"or levels=null.")
    return sizes[::-1]


def _half(size: tuple[int, int]) -> tuple[int, int]:
    return (size[0] + 1) // 2, (size[1] + 1) // 2


def pyramid(planes: np.ndarray, levels: int) -> list[np.ndarray]:
    """The Gaussian pyramid of a C x H x W image, coarse to fine (`levels` entries, the last one itself)."""
    images = [torch.from_numpy(planes)[None]]
    for _ in range(levels - 1):
        images.append(downsample(images[-1]))
    return [image[0].numpy() for image in images[::-1]]


def mask_pyramid(mask: np.ndarray, levels: int) -> list[np.ndarray]:
    """The mask at each scale: the pixels the pyramid's subsampling keeps (nearest, as the authors resize it)."""
    masks = [mask]
    for _ in range(levels - 1):
        masks.append(masks[-1][::2, ::2])
    return masks[::-1]


def resize(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a C x H x W image (antialiased when it shrinks); the image itself at its own size."""
    if planes.shape[1:] == tuple(size):
        return planes
    shrink = size[0] < planes.shape[1] or size[1] < planes.shape[2]
    image = torch.from_numpy(planes)[None]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)[0].numpy()


def _upsample(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return upsample(torch.from_numpy(planes)[None], size)[0].numpy()


def gaussian_poisson(src: Image, dst: Image, mask: Image, low_res_blend: Image, *, levels: int | None = None,
                     beta: float = 1.0, sigma: float = 0.5, form: str = "paper", details: bool = True,
                     clip: bool = True) -> Image:
    """GP-GAN's high-resolution blend of src's masked region into dst, with colours from `low_res_blend`.

    Images are C x H x W (or H x W) floats in [0, 1]; `low_res_blend` has their channels and any size (it
    is resized to the coarsest scale). `levels` scales (None: from the low-res blend's size), `beta` the
    colour weight, `sigma` the colour term's Gaussian; `clip` limits each scale's result to [0, 1], as the
    authors do. To blend a plain composite, pass it as both src and dst (the mask then does not matter).
    """
    source, layout = read_image(src, "src")
    target, _ = read_image(dst, "dst")
    same_size(source, target, ("src", "dst"))
    inside = read_mask(mask, source.shape[1:])
    low_res, _ = read_image(low_res_blend, "low_res_blend")
    if low_res.shape[0] != source.shape[0]:
        raise UserError(f"low_res_blend has {low_res.shape[0]} channels but src has {source.shape[0]}; the "
                        f"Blending GAN must output the images' channels.")
    _check_settings(beta, sigma, form)
    sizes = level_sizes(*source.shape[1:], levels, low_res.shape[1:])
    sources, targets, masks = pyramid(source, len(sizes)), pyramid(target, len(sizes)), mask_pyramid(inside, len(sizes))
    result = colour = resize(low_res, sizes[0])
    for scale in range(len(sizes)):
        if scale:
            colour = _upsample(result, sizes[scale])
            if details:
                colour = colour + _band(sources, targets, masks[scale], scale)
        result = solve_scale(sources[scale], targets[scale], masks[scale], colour, beta, sigma, form)
        if clip:
            np.clip(result, 0.0, 1.0, out=result)
    return give_back(result, layout)


def _band(sources: list[np.ndarray], targets: list[np.ndarray], mask: np.ndarray, scale: int) -> np.ndarray:
    """The Laplacian band at `scale`: src's inside the mask, dst's outside."""
    size = mask.shape
    src_band = sources[scale] - _upsample(sources[scale - 1], size)
    dst_band = targets[scale] - _upsample(targets[scale - 1], size)
    return np.where(mask, src_band, dst_band)


def _check_settings(beta: float, sigma: float, form: str) -> None:
    if form not in FORMS:
        raise UserError(f"form={form!r}: choose 'paper' (the minimiser of the paper's H(x)) or 'authors' (the "
                        f"equation the authors' gp_gan.py solves).")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise UserError(f"beta={beta}: the colour weight must be a positive number (the paper uses 1); with 0 "
                        f"only the gradients are kept and the colours are undetermined.")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise UserError(f"sigma={sigma}: the colour term's Gaussian needs a sigma >= 0 (0.5 in the authors' code).")
