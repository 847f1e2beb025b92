"""Conditioning augmentation (Zhang et al. 2016, StackGAN): the text embedding phi_t gives a Gaussian
N(mu(phi_t), diag(sigma^2(phi_t))) and the generator's condition is drawn from it, c = mu + sigma * eps.
Drawing c smooths the conditioning manifold (few captions, many conditions); the KL term below keeps the
Gaussian close to N(0, I) so that it does not collapse to a point.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: how the fully connected layer's output is shaped before it is split into mu and log sigma^2
ACTIVATIONS = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # the authors' TensorFlow code (leaky_rectify, 0.2)
    "relu": nn.ReLU,                           # the authors' PyTorch port (log sigma^2 >= 0 there)
    "none": nn.Identity,
}


class ConditioningAugmentation(nn.Module):
    """phi_t (text_dim) -> fully connected layer + activation -> (mu, log sigma^2), each condition_dim wide.

    `forward(text)` returns (c, mu, logvar) with c = mu + sigma * eps; `sample=False` gives c = mu (a
    deterministic condition, e.g. to compare captions without the augmentation's noise).
    """

    def __init__(self, text_dim: int, condition_dim: int = 128, activation: str = "leaky_relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.text_dim, self.condition_dim = text_dim, condition_dim
        self.fc = nn.Linear(text_dim, 2 * condition_dim)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, text: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.activation(self.fc(text)).chunk(2, dim=1)
        if not sample:
            return mu, mu, logvar
        c = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return c, mu, logvar


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1).

    Summed over the condition's dimensions (the KL of the distributions proper) and averaged over the batch.
    StackGAN's PyTorch port averages over the dimensions too, i.e. its value is this one / condition_dim;
    scale the KL weight accordingly when comparing with it.
    """
    per_example = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)
    return per_example.mean()
