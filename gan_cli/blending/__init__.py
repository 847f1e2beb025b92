"""Image blending for GP-GAN (Wu et al. 2017, "GP-GAN: Towards Realistic High-Resolution Image Blending").

- `gaussian_poisson`: the Gaussian-Poisson equation, solved in closed form (DCT) at each scale of a
  pyramid, joins a low-resolution blend's colours (the Blending GAN's output) with the gradients of the
  source inside the mask and of the destination outside.
- `poisson_blend`: plain Poisson image editing (Perez et al. 2003): the fallback without a Blending GAN.
  It keeps the destination exactly outside the mask, where the Gaussian-Poisson equation with no GAN
  (colours from the composite itself) would bring back the composite's colour jump.
- `blend`: the two behind one call, as gan-blend uses them.

Images are floats in [0, 1], C x H x W or H x W, numpy arrays or torch tensors; masks are one binary
channel. Results come back in the form `src` came in.
"""

from __future__ import annotations

from gan_cli.blending.gaussian_poisson import gaussian_poisson, level_sizes, pyramid, solve_scale
from gan_cli.blending.images import Image
from gan_cli.blending.poisson import poisson_blend

__all__ = ["blend", "gaussian_poisson", "level_sizes", "poisson_blend", "pyramid", "solve_scale"]


def blend(src: Image, dst: Image, mask: Image, low_res_blend: Image | None = None, *, clip: bool = True,
          **settings) -> Image:
    """GP-GAN's blend when there is a low-resolution blend, plain Poisson blending when there is none.

    `settings` (levels, beta, sigma, form, details) go to `gaussian_poisson`; Poisson blending has none.
    """
    if low_res_blend is None:
        return poisson_blend(src, dst, mask, clip=clip)
    return gaussian_poisson(src, dst, mask, low_res_blend, clip=clip, **settings)
