"""Exact quantities of tiny RBMs, to check gan_cli's RBM against: the partition function by enumeration, the
log-likelihood, and scikit-learn's one-bit estimate of the pseudo-log-likelihood."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.models.classic.rbm_nets import RBMNet

#: the largest layer enumerated by the exact partition function (2^20 states)
MAX_ENUMERATED = 20


def all_binary(n: int, like: Tensor) -> Tensor:
    """All 2^n binary vectors of length n, as rows (dtype and device of `like`)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=like.dtype, device=like.device)


@torch.no_grad()
def log_partition(net: RBMNet) -> Tensor:
    """log Z = log sum_{v,h} exp(-E(v, h)), exactly, by enumerating the smaller layer."""
    if min(net.visible, net.hidden) > MAX_ENUMERATED:
        raise ValueError(f"log_partition enumerates 2^{min(net.visible, net.hidden)} states: only for RBMs with at "
                         f"most {MAX_ENUMERATED} visible or hidden units.")
    if net.visible <= net.hidden:
        return torch.logsumexp(-net.free_energy(all_binary(net.visible, net.W)), 0)
    h = all_binary(net.hidden, net.W)  # sum over v first: -F_h(h) = c'h + sum_i softplus(b_i + (W h)_i)
    return torch.logsumexp(h @ net.c + F.softplus(torch.addmm(net.b, h, net.W.t())).sum(-1), 0)


@torch.no_grad()
def log_likelihood(net: RBMNet, v: Tensor) -> Tensor:
    """log p(v) = -F(v) - log Z."""
    return -net.free_energy(v) - log_partition(net)


@torch.no_grad()
def stochastic_pseudo_log_likelihood(net: RBMNet, v: Tensor) -> Tensor:
    """scikit-learn's estimate (BernoulliRBM.score_samples): D log sigmoid(F(v^i) - F(v)) for one bit i drawn at
    random per row. Unbiased for the exact value, but noisy."""
    index = torch.randint(0, net.visible, (len(v),), device=v.device)
    flipped = v.clone()
    rows = torch.arange(len(v), device=v.device)
    flipped[rows, index] = 1 - flipped[rows, index]
    return net.visible * F.logsigmoid(net.free_energy(flipped) - net.free_energy(v))
