"""InfoGAN's variational lower bound of the mutual information I(c; G(z, c)) (Chen et al. 2016, Lemma 5.1):

    L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)}[log Q(c | x)] + H(c)  <=  I(c; G(z, c))

Q is an auxiliary distribution: a softmax over the values of a categorical code, a factored Gaussian for
continuous codes. -E[log Q(c | x)] is a cross-entropy (categorical) or a negative log-likelihood (Gaussian);
adding the prior's entropy H(c), a constant, makes the value the bound itself: for a categorical code of K
equally likely values it lies in [.., log K], log K when Q recovers c exactly, 0 when Q is uniform.

All values are in nats and averaged over the batch (summed over the dimensions of a code).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


# --- categorical codes ---------------------------------------------------------------------------------
def categorical_entropy(size: int) -> float:
    """H(c) of a categorical code uniform over `size` values: log(size)."""
    return math.log(size)


def categorical_cross_entropy(logits: Tensor, codes: Tensor) -> Tensor:
    """-E[log Q(c | x)]: Q's softmax `logits` (N, K) against the drawn code values `codes` (N,) in 0..K-1."""
    return F.cross_entropy(logits.float(), codes.long())


def categorical_information(logits: Tensor, codes: Tensor) -> Tensor:
    """L_I of one categorical code uniform over K = logits.size(1) values: H(c) - cross-entropy."""
    return categorical_entropy(logits.size(1)) - categorical_cross_entropy(logits, codes)


def split_categorical(logits: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """Q's logits for several categorical codes side by side (N, sum(sizes)) -> one (N, K_i) per code."""
    return list(torch.split(logits, list(sizes), dim=1))


def categorical_codes_information(logits: Tensor, codes: Tensor, sizes: Sequence[int]) -> Tensor:
    """L_I of several independent categorical codes: the sum of their bounds. `codes` is (N, len(sizes))."""
    if not sizes:
        return logits.new_zeros(())
    return sum(categorical_information(part, codes[:, i]) for i, part in enumerate(split_categorical(logits, sizes)))


# --- continuous codes ----------------------------------------------------------------------------------
def uniform_entropy(dims: int, low: float = -1.0, high: float = 1.0) -> float:
    """Differential entropy H(c) of `dims` independent codes uniform in [low, high]: dims * log(high - low)."""
    return dims * math.log(high - low)


def gaussian_nll(mean: Tensor, codes: Tensor, log_std: Tensor | None = None) -> Tensor:
    """-E[log Q(c | x)] for a factored Gaussian Q(c | x) = N(mean, diag(std^2)): summed over the code's
    dimensions, averaged over the batch. `log_std` None fixes std = 1 (the authors' MNIST setting)."""
    mean, codes = mean.float(), codes.float()
    if log_std is None:
        per_dim = 0.5 * (codes - mean) ** 2 + 0.5 * LOG_2PI
    else:
        log_std = log_std.float()
        per_dim = 0.5 * ((codes - mean) * torch.exp(-log_std)) ** 2 + log_std + 0.5 * LOG_2PI
    return per_dim.sum(dim=1).mean()


def continuous_information(mean: Tensor, codes: Tensor, log_std: Tensor | None = None, low: float = -1.0,
                           high: float = 1.0) -> Tensor:
    """L_I of continuous codes uniform in [low, high] under a factored Gaussian Q: H(c) - Gaussian NLL.

    With std fixed at 1 the bound is loose: even a perfect mean gives log(high - low) - log(2 pi) / 2 per
    dimension (-0.226 for [-1, 1]); a learned std can tighten it."""
    if codes.size(1) == 0:
        return mean.new_zeros(())
    return uniform_entropy(codes.size(1), low, high) - gaussian_nll(mean, codes, log_std)
