"""The terms of the autoencoders' and the VAE's objectives, as small pure functions.

Images enter these functions as pixel brightnesses in [0, 1] (the models map the data's normalisation to
and from it); decoders give one logit per pixel, whose sigmoid is the reconstructed brightness. Per-image
terms are summed over pixels or code units and returned per image, shape (N,): the models average them
over the batch, so logged values are nats (or squared errors) per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CORRUPTIONS = ("none", "masking", "gaussian")


def per_image(values: Tensor) -> Tensor:
    """Sum over every dimension but the first."""
    return values.flatten(1).sum(1)


# --- reconstruction ------------------------------------------------------------------------------
def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log p(x | logits) of a Bernoulli per pixel (the cross-entropy of Hinton & Salakhutdinov's logistic
    outputs and of Kingma & Welling's MNIST decoder), with grey levels in [0, 1] as soft targets."""
    return per_image(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))


def gaussian_nll(mean: Tensor, target: Tensor, log_std: Tensor | float) -> Tensor:
    """-log N(x; mean, std^2) summed over pixels, constant included (std = exp(log_std), one value for all
    pixels, fixed or learned)."""
    log_std = torch.as_tensor(log_std, dtype=mean.dtype, device=mean.device)
    nll = 0.5 * ((target - mean) * torch.exp(-log_std)) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
    return per_image(nll.expand_as(mean))


def squared_error(mean: Tensor, target: Tensor) -> Tensor:
    """Sum of squared pixel errors per image."""
    return per_image((mean - target) ** 2)


# --- the VAE's latent terms ----------------------------------------------------------------------
def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z | x) through which gradients reach mu and
    log sigma^2 (dz/dmu = 1, dz/dlogvar = sigma * eps / 2); eps itself carries no gradient."""
    eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) in closed form, per image:
    1/2 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


# --- the sparse autoencoder's penalty ------------------------------------------------------------
def bernoulli_kl(rho: float, rho_hat: Tensor, eps: float = 1e-6) -> Tensor:
    """KL(rho || rho_hat) between Bernoulli distributions, elementwise:
    rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat))."""
    rho_hat = rho_hat.clamp(eps, 1 - eps)
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


def sparsity_penalty(activations: Tensor, rho: float) -> Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation (in (0, 1)) of unit j over the batch."""
    return bernoulli_kl(rho, activations.mean(0)).sum()


# --- the denoising autoencoder's corruption ------------------------------------------------------
def corrupt(images: Tensor, kind: str, level: float) -> Tensor:
    """Vincent et al. 2010's corruption q(x~ | x) of images in [0, 1]: "masking" sets each value to 0 with
    probability `level`; "gaussian" adds N(0, level^2) noise to each value (not clipped); "none" returns x."""
    if kind == "none" or level == 0:
        return images
    if kind == "masking":
        return images * (torch.rand_like(images) >= level)
    if kind == "gaussian":
        return images + level * torch.randn_like(images)
    raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")
