"""D's losses written out from the papers, to hold the adversarial objectives' terms against (tests/test_losses.py)
and to evaluate Goodfellow et al.'s value function with (tests/test_value_function.py)."""

from __future__ import annotations

import torch


def bce_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-(E[log sigmoid(D(x))] + E[log(1 - sigmoid(D(G(z))))]): the negated value function of Goodfellow et al."""
    return torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()


def least_squares_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(D(x) - 1)^2] + E[D(G(z))^2]."""
    return ((real - 1) ** 2).mean() + (fake ** 2).mean()


def wasserstein_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)]: the critic maximises the estimate of the Wasserstein-1 distance."""
    return fake.mean() - real.mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()
