"""Regularisers of the discriminator."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _input_gradients(critic: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """grad_x D(x) at `points`, flattened to one row per sample (detached first: a penalty trains D only).

    The graph is kept (create_graph) so the penalty can be backpropagated into D's weights. Summing the
    scores gives each sample its own gradient as long as D treats samples independently (in train mode,
    BatchNorm couples them; the papers' critics avoid it).
    """
    points = points.detach().requires_grad_(True)
    # compiled networks (engine.compile) have no double backward: the penalty's own pass runs them eagerly
    with torch.compiler.set_stance("force_eager"):
        (grads,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    return grads.flatten(1)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat."""
    alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = alpha * real.detach() + (1 - alpha) * fake.detach()
    return ((_input_gradients(critic, mixed).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"): E[||grad_x D(x)||^2]
    on real data only.

    Penalising D's gradient where the data lie makes gradient descent locally convergent near the
    equilibrium p_g = p_data (their Theorem 4.1), which unregularised GANs can circle forever (their Dirac
    GAN). The paper adds (gamma / 2) * R1 to D's loss; this function returns the bare mean, and the caller
    applies gamma / 2. The sum of squares is taken directly, not as a squared norm, so a zero gradient
    stays smooth.
    """
    return _input_gradients(critic, real).pow(2).sum(1).mean()


def clip_weights_(module: torch.nn.Module, clip_value: float) -> None:
    """WGAN (Arjovsky et al. 2017): keep the critic Lipschitz by clipping every weight to [-c, c]."""
    with torch.no_grad():
        for param in module.parameters():
            param.clamp_(-clip_value, clip_value)
