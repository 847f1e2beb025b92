"""Adversarial objectives. Every adversarial model calls them the same way, so `loss=` swaps them anywhere.

The discriminator always returns raw scores (logits); each objective applies its own link function.
An objective also carries the schedule its paper prescribes: `d_steps`, the number of discriminator
updates per generator update (k in Goodfellow et al.'s Algorithm 1, n_critic in the WGAN papers).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.config.ranges import NonNegativeFloat, PositiveInt
from gan_cli.losses.penalties import clip_weights_, gradient_penalty


# --- the terms: what D pays on real images, what it pays on fakes, what G pays ------------------------
def bce_real_loss(real_logits: Tensor) -> Tensor:
    """-E[log D(x)]: the real-image half of the negated value function V(D, G) of Goodfellow et al."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))


def bce_fake_loss(fake_logits: Tensor) -> Tensor:
    """-E[log(1 - D(G(z)))]: the fake-image half of -V(D, G)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def saturating_g_loss(fake_logits: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], minimised by G: the minimax game as written in the paper."""
    return -bce_fake_loss(fake_logits)


def non_saturating_g_loss(fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))]: the heuristic of Goodfellow et al. with stronger gradients early in training."""
    return bce_real_loss(fake_logits)


# Least squares (Mao et al. 2017, a=0, b=1, c=1) in the form of the CycleGAN paper and the reference code:
# plain mean squared errors. Mao et al. halve every term; that constant changes nothing under Adam, while
# the unhalved form keeps the weights of the translation models (cycle lambda 10) as their papers mean them.
def least_squares_real_loss(real_scores: Tensor) -> Tensor:
    """E[(D(x) - 1)^2]."""
    return ((real_scores - 1) ** 2).mean()


def least_squares_fake_loss(fake_scores: Tensor) -> Tensor:
    """E[D(G(z))^2]."""
    return (fake_scores**2).mean()


def least_squares_g_loss(fake_scores: Tensor) -> Tensor:
    """E[(D(G(z)) - 1)^2]."""
    return least_squares_real_loss(fake_scores)


def wasserstein_real_loss(real_scores: Tensor) -> Tensor:
    return -real_scores.mean()


def wasserstein_fake_loss(fake_scores: Tensor) -> Tensor:
    return fake_scores.mean()


def wasserstein_g_loss(fake_scores: Tensor) -> Tensor:
    return -fake_scores.mean()


def hinge_real_loss(real_scores: Tensor) -> Tensor:
    return F.relu(1 - real_scores).mean()


def hinge_fake_loss(fake_scores: Tensor) -> Tensor:
    return F.relu(1 + fake_scores).mean()


class AdversarialLoss(nn.Module):
    """Base objective. Subclasses define D's two terms (`d_real_loss`, `d_fake_loss`) and `g_loss`; penalties
    and post-step hooks are optional. D's loss is the sum of its two terms."""

    #: whether sigmoid(score) is the probability "real" (so D(x) can be logged as a probability)
    probabilistic = False
    #: the bound of D's weights after each update (weight clipping), or None
    clip_value: float | None = None

    def __init__(self, d_steps: PositiveInt = 1) -> None:
        super().__init__()
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        self.d_steps = d_steps

    def d_real_loss(self, real_scores: Tensor) -> Tensor:
        """What D pays on real images."""
        raise NotImplementedError

    def d_fake_loss(self, fake_scores: Tensor) -> Tensor:
        """What D pays on generated images."""
        raise NotImplementedError

    def d_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return self.d_real_loss(real_scores) + self.d_fake_loss(fake_scores)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        raise NotImplementedError

    def d_penalty(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor | None:
        """An extra term of D's loss that needs D itself (e.g. the gradient penalty); None when there is none."""
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        """Called after every discriminator update (e.g. weight clipping)."""

    def score(self, scores: Tensor) -> Tensor:
        """What to log as D(x) / D(G(z)): a probability for probabilistic objectives, else the raw score."""
        return torch.sigmoid(scores) if self.probabilistic else scores


class MinimaxLoss(AdversarialLoss):
    """Goodfellow et al. 2014, the minimax game with the saturating generator loss log(1 - D(G(z)))."""

    probabilistic = True

    def d_real_loss(self, real_scores: Tensor) -> Tensor:
        return bce_real_loss(real_scores)

    def d_fake_loss(self, fake_scores: Tensor) -> Tensor:
        return bce_fake_loss(fake_scores)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return saturating_g_loss(fake_scores)


class NonSaturatingLoss(MinimaxLoss):
    """Goodfellow et al. 2014, with the non-saturating generator loss -log D(G(z))."""

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return non_saturating_g_loss(fake_scores)


class LeastSquaresLoss(AdversarialLoss):
    """Mao et al. 2017, "Least Squares Generative Adversarial Networks"."""

    def d_real_loss(self, real_scores: Tensor) -> Tensor:
        return least_squares_real_loss(real_scores)

    def d_fake_loss(self, fake_scores: Tensor) -> Tensor:
        return least_squares_fake_loss(fake_scores)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return least_squares_g_loss(fake_scores)


class WassersteinLoss(AdversarialLoss):
    """Arjovsky et al. 2017, "Wasserstein GAN": the critic maximises E[D(x)] - E[D(G(z))], n_critic = 5, and keeps
    to Lipschitz functions by weight clipping (`clip_value`) or, with `gp_weight` > 0, by a gradient penalty."""

    def __init__(self, d_steps: PositiveInt = 5, clip_value: float | None = 0.01,
                 gp_weight: NonNegativeFloat = 0.0) -> None:
        super().__init__(d_steps)
        self.clip_value, self.gp_weight = clip_value, gp_weight

    def d_real_loss(self, real_scores: Tensor) -> Tensor:
        return wasserstein_real_loss(real_scores)

    def d_fake_loss(self, fake_scores: Tensor) -> Tensor:
        return wasserstein_fake_loss(fake_scores)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return wasserstein_g_loss(fake_scores)

    def d_penalty(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor | None:
        return self.gp_weight * gradient_penalty(critic, real, fake) if self.gp_weight else None

    def after_d_step(self, discriminator: nn.Module) -> None:
        if self.clip_value is not None:
            clip_weights_(discriminator, self.clip_value)


class WassersteinGPLoss(WassersteinLoss):
    """Gulrajani et al. 2017, "Improved Training of Wasserstein GANs": the gradient penalty (lambda = 10) in place
    of weight clipping."""

    def __init__(self, d_steps: PositiveInt = 5, gp_weight: NonNegativeFloat = 10.0) -> None:
        super().__init__(d_steps, clip_value=None, gp_weight=gp_weight)


class HingeLoss(AdversarialLoss):
    """The hinge version of the adversarial loss (Lim & Ye 2017, Miyato et al. 2018)."""

    def d_real_loss(self, real_scores: Tensor) -> Tensor:
        return hinge_real_loss(real_scores)

    def d_fake_loss(self, fake_scores: Tensor) -> Tensor:
        return hinge_fake_loss(fake_scores)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return wasserstein_g_loss(fake_scores)


#: the value of the game at its global optimum p_g = p_data, where D* = 1/2 everywhere
OPTIMAL_VALUE = -math.log(4.0)
