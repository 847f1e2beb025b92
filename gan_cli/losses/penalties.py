"""Regularisers of the discriminator."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat."""
    alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def clip_weights_(module: torch.nn.Module, clip_value: float) -> None:
    """WGAN (Arjovsky et al. 2017): keep the critic Lipschitz by clipping every weight to [-c, c]."""
    with torch.no_grad():
        for param in module.parameters():
            param.clamp_(-clip_value, clip_value)
