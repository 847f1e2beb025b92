"""Losses and penalties: small pure functions, and the adversarial objectives built from them."""

from gan_cli.losses.adversarial import (
    AdversarialLoss,
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinGPLoss,
    WassersteinLoss,
)
from gan_cli.losses.penalties import gradient_penalty

__all__ = [
    "AdversarialLoss",
    "HingeLoss",
    "LeastSquaresLoss",
    "MinimaxLoss",
    "NonSaturatingLoss",
    "WassersteinGPLoss",
    "WassersteinLoss",
    "gradient_penalty",
]
