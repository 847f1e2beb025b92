"""StyleGAN2's regularisers and averages (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), as plain functions on tensors, every one computed on the device (no value is read on the host):

- style mixing regularisation (StyleGAN, Karras et al. 2019, Section 3.1);
- the path length penalty's Jacobian norms (StyleGAN2, Section 3.2);
- the lazy-regularisation correction of Adam's settings (Appendix B of StyleGAN2);
- the moving average of G's weights with its half-life in images (and StyleGAN2-ADA's ramp-up).

The lazy R1 penalty is gan_cli.losses.penalties.r1_penalty.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn


def style_mix(w: Tensor, other: Tensor, num_ws: int, prob: float) -> Tensor:
    """(N, num_ws, w_dim): for `prob` of the samples, a crossover layer c drawn uniformly from 1 .. num_ws - 1,
    layers before c taking w and layers from c on taking `other` (both (N, w_dim)); the rest take w at every
    layer. Drawn per sample with masks, so the batch never leaves the device."""
    n = w.size(0)
    cutoff = torch.randint(1, num_ws, (n, 1), device=w.device)
    mixed = torch.rand(n, 1, device=w.device) < prob
    cutoff = torch.where(mixed, cutoff, torch.full_like(cutoff, num_ws))
    second = torch.arange(num_ws, device=w.device).unsqueeze(0) >= cutoff  # (N, num_ws)
    return torch.where(second.unsqueeze(-1), other.unsqueeze(1), w.unsqueeze(1))


def path_lengths(images: Tensor, ws: Tensor) -> Tensor:
    """||J_w^T y||_2 per sample, y ~ N(0, I) / sqrt(pixels) an image of noise and J_w the Jacobian of the images
    with respect to the w's; with a w per layer, the root of the mean over layers of each layer's squared
    gradient norm, as the authors compute it. The graph is kept (create_graph) so that the penalty trains G."""
    noise = torch.randn_like(images) / math.sqrt(images.size(2) * images.size(3))
    (grads,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grads.square().sum(dim=2).mean(dim=1).sqrt()


def lazy_factor(interval: int | None) -> float:
    """c = interval / (interval + 1): a network regularised every `interval` minibatches in a step of its own takes
    interval + 1 optimizer steps per interval, so Adam runs at lr * c with betas ** c (1 without a regulariser)."""
    return interval / (interval + 1) if interval else 1.0


def ema_decay(batch_size: int, half_life_kimg: float) -> float:
    """The decay per step that halves an old weight's share every `half_life_kimg` thousand images."""
    return 0.5 ** (batch_size / max(half_life_kimg * 1000, 1e-8))


def ema_average_fn(batch_size: int, half_life_kimg: float, rampup: float | None
                   ) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """An AveragedModel `multi_avg_fn`: torch's EMA at the half-life's decay; with `rampup` (StyleGAN2-ADA), the
    half-life is min(half_life, rampup * images seen) so that early averages follow G closely."""
    if not rampup:
        return get_ema_multi_avg_fn(ema_decay(batch_size, half_life_kimg))

    @torch.no_grad()
    def ramped(averages: list[Tensor], currents: list[Tensor], num_averaged: Tensor) -> None:
        seen = num_averaged.to(averages[0].dtype) * batch_size  # images before this update
        half_life = torch.clamp(seen * rampup, max=half_life_kimg * 1000).clamp_min(1e-8)
        decay = torch.pow(0.5, batch_size / half_life)
        torch._foreach_lerp_(averages, currents, 1 - decay)  # as torch's get_ema_multi_avg_fn updates

    return ramped
