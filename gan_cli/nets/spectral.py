"""Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks")
of every convolution and linear layer of a network, with torch's own parametrization.

Each weight W is used as W / sigma(W), sigma its largest singular value, estimated by power iteration
(n_power_iterations per forward pass in train mode, the vectors persisting between passes). That bounds
each layer's Lipschitz constant, and so D's, for two matrix-vector products per layer and step.
As in the paper and in torch, a convolution's sigma is that of its kernel reshaped to (out_channels, -1),
not the exact operator norm of the convolution.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

#: the layers whose `weight` gets normalised
NORMALISED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Wrap the weight of every nn.Conv2d, nn.ConvTranspose2d and nn.Linear inside `module` (itself
    included) with spectral normalisation, in place; returns `module`. Layers whose weight is already
    parametrized are left as they are, so applying it twice changes nothing.

    A transposed convolution stores its weight as (in, out, kh, kw): its output dimension is 1.
    """
    for layer in list(module.modules()):
        if isinstance(layer, NORMALISED_LAYERS) and not parametrize.is_parametrized(layer, "weight"):
            dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
            spectral_norm(layer, n_power_iterations=n_power_iterations, dim=dim)
    return module
