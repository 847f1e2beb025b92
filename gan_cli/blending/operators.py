"""The discrete operators of the Gaussian-Poisson equation and their DCT-domain eigenvalues.

Pixels are the nodes of the 4-neighbour grid graph; a gradient lives on the edges between horizontal
and vertical neighbours, the divergence sums the flux around a pixel, and no flux crosses the image's
border (Neumann). The Laplacian div grad is then the graph Laplacian, and the Gaussian filter G uses
half-sample symmetric (mirror) borders; both are diagonalised by the 2-D DCT-II, so
x = idct2(f(dct2(...))) solves their equations in closed form (Strang 1999, "The discrete cosine
transform"; Martucci 1994 for symmetric convolution).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dctn, idctn

AXES = (-2, -1)


def dct2(planes: np.ndarray) -> np.ndarray:
    """Orthonormal 2-D DCT-II of each channel."""
    return dctn(planes, type=2, norm="ortho", axes=AXES)


def idct2(coefficients: np.ndarray) -> np.ndarray:
    """Inverse of `dct2`."""
    return idctn(coefficients, type=2, norm="ortho", axes=AXES)


def edge_weights(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of the source in each horizontal and vertical edge's gradient.

    As in the authors' gp_gan.py: an edge takes the source's gradient between two masked pixels, the
    destination's between two unmasked ones, and the mean of both across the seam.
    """
    weight = mask.astype(np.float64)
    return (weight[:, 1:] + weight[:, :-1]) / 2, (weight[1:, :] + weight[:-1, :]) / 2


def gradients(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences along each horizontal and vertical edge: (C x H x W-1, C x H-1 x W)."""
    return np.diff(planes, axis=-1), np.diff(planes, axis=-2)


def divergence(horizontal: np.ndarray, vertical: np.ndarray) -> np.ndarray:
    """The net flux into each pixel, with none through the image's border; div(gradients(x)) = Laplacian x."""
    flux_h = np.pad(horizontal, ((0, 0), (0, 0), (1, 1)))
    flux_v = np.pad(vertical, ((0, 0), (1, 1), (0, 0)))
    return np.diff(flux_h, axis=-1) + np.diff(flux_v, axis=-2)


def guidance_divergence(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """div v for the guidance field v: the source's gradients inside the mask, the destination's outside."""
    share_h, share_v = edge_weights(mask)
    src_h, src_v = gradients(src)
    dst_h, dst_v = gradients(dst)
    return divergence(share_h * src_h + (1 - share_h) * dst_h, share_v * src_v + (1 - share_v) * dst_v)


def _axis_cosines(size: int) -> np.ndarray:
    """cos(pi k / n) for the DCT-II frequencies k = 0..n-1."""
    return np.cos(np.pi * np.arange(size) / size)


def laplacian_eigenvalues(height: int, width: int) -> np.ndarray:
    """H x W eigenvalues of the Neumann graph Laplacian: -(2 - 2 cos(pi k / H)) - (2 - 2 cos(pi l / W)) <= 0."""
    return (2 * _axis_cosines(height) - 2)[:, None] + (2 * _axis_cosines(width) - 2)[None, :]


def gaussian_taps(sigma: float) -> np.ndarray:
    """Weights of the sampled Gaussian at offsets 0..r, normalised over -r..r.

    r = int(4 sigma + 0.5) as in scipy.ndimage.gaussian_filter (truncate=4), so the two filters agree.
    """
    radius = int(4 * sigma + 0.5)
    if radius == 0:
        return np.ones(1)
    taps = np.exp(-np.arange(radius + 1) ** 2 / (2 * sigma**2))
    return taps / (taps[0] + 2 * taps[1:].sum())


def _gaussian_axis(size: int, sigma: float) -> np.ndarray:
    taps = gaussian_taps(sigma)
    frequencies = np.pi * np.arange(size)[:, None] * np.arange(1, len(taps))[None, :] / size
    return taps[0] + 2 * (taps[1:] * np.cos(frequencies)).sum(axis=1)


def gaussian_eigenvalues(height: int, width: int, sigma: float) -> np.ndarray:
    """H x W eigenvalues of the separable Gaussian filter with mirrored borders (1 at frequency 0)."""
    return _gaussian_axis(height, sigma)[:, None] * _gaussian_axis(width, sigma)[None, :]
