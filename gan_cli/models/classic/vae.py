"""`model=vae`: the variational autoencoder of Kingma & Welling 2013, "Auto-Encoding Variational Bayes".

The encoder gives mu and log sigma^2 of q(z | x) = N(mu, diag sigma^2); z = mu + sigma * eps, eps ~ N(0, I)
(the reparameterisation); the decoder gives p(x | z). The loss is the negative ELBO per image,
    -log p(x | z) + kl_weight * KL(q(z | x) || N(0, I)),
with the KL term in closed form (kl_weight = 1 is the ELBO; other values weight it, as beta-VAE does).

p(x | z) is a setting (`likelihood`): "bernoulli" (Kingma & Welling's MNIST decoder: each pixel's grey
level in [0, 1] is the target of a Bernoulli with the decoder's logit), or "gaussian" (for colour images:
a Gaussian around the sigmoid of the logit, in [0, 1] units, with standard deviation `gaussian_std`, learned
from that start when `learn_std`). Images drawn or reconstructed are the mean of p(x | z) (no pixel noise).

Logged: train/ and val/ reconstruction (-log p(x|z)), kl, and loss (the negative ELBO), per image; grids of
prior samples, reconstructions (input row, reconstruction row) and interpolations between the codes (mu) of
two held-out images (one pair a row: the first image, the decoded steps, the second image).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.reconstruction import bernoulli_nll, gaussian_nll, kl_to_standard_normal, reparameterize
from gan_cli.models.classic.autoencoder import ImageCoder, evaluating
from gan_cli.models.contract import LatentSampler

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(ImageCoder, LatentSampler):
    """Encoder (-> 2 * code_dim numbers: mu, log sigma^2) and decoder (code -> a logit per pixel)."""

    def __init__(self, encoder: Callable[..., nn.Module], decoder: Callable[..., nn.Module],
                 optimizer: Callable[..., Optimizer], code_dim: PositiveInt = 16, likelihood: str = "bernoulli",
                 gaussian_std: float = 0.1, learn_std: bool = False, kl_weight: NonNegativeFloat = 1.0,
                 lr: PositiveFloat = 1e-3, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,),
                 num_samples: PositiveInt = 64, num_examples: PositiveInt = 10, interpolation_steps: int = 8) -> None:
        if likelihood not in LIKELIHOODS:
            raise UserError(f"model.likelihood={likelihood!r}: choose bernoulli (grey digits) or gaussian (colour "
                            "images, with model.gaussian_std=...).")
        if gaussian_std <= 0:
            raise UserError(f"model.gaussian_std={gaussian_std}: the Gaussian's standard deviation (in [0, 1] pixel "
                            "units) must be positive, e.g. 0.1.")
        if kl_weight < 0:
            raise UserError(f"model.kl_weight={kl_weight}: give a weight >= 0 (1 is the ELBO).")
        if num_samples < 1 or interpolation_steps < 2:
            raise UserError(f"model.num_samples={num_samples}, model.interpolation_steps={interpolation_steps}: show "
                            "at least 1 sample and 2 interpolation steps.")
        mean, std = [float(v) for v in mean], [float(v) for v in std]  # plain lists: weights_only checkpoints
        super().__init__(encoder, decoder, code_dim, 2 * code_dim, mean, std, optimizer, lr, num_examples)
        self.save_hyperparameters(ignore=["encoder", "decoder", "optimizer"])
        self.likelihood, self.kl_weight = likelihood, float(kl_weight)
        self.interpolation_steps = int(interpolation_steps)
        log_std = torch.tensor(math.log(gaussian_std))
        if learn_std and likelihood == "gaussian":
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)
        self.grid_row = max(1, int(math.sqrt(num_samples)))
        self.register_buffer("fixed_z", torch.randn(num_samples, self.code_dim))

    # --- the model -----------------------------------------------------------------------------------
    def posterior(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma^2) of q(z | x) for normalised images."""
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        return mu, logvar

    def representation(self, images: Tensor) -> Tensor:
        return self.posterior(images)[0]

    def reconstruction_nll(self, logits: Tensor, target: Tensor) -> Tensor:
        """-log p(x | z) per image, x the brightness in [0, 1]."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(logits, target)
        return gaussian_nll(torch.sigmoid(logits), target, self.log_std)

    def objective(self, images: Tensor, training: bool) -> dict[str, Tensor]:
        mu, logvar = self.posterior(images)
        z = reparameterize(mu, logvar)
        reconstruction = self.reconstruction_nll(self.decoder(z), self.to_unit(images)).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        terms = {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}
        if self.kl_weight != 1:  # what is minimised is then not the negative ELBO itself
            terms["objective"] = reconstruction + self.kl_weight * kl
        if self.likelihood == "gaussian" and isinstance(self.log_std, nn.Parameter):
            terms["gaussian_std"] = self.log_std.detach().exp()
        return terms

    # --- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """`n` images decoded from z ~ N(0, I), in the data's normalisation. The VAE is unconditional."""
        if labels is not None:
            raise UserError("model=vae draws from one prior for all images: it takes no label (leave out label=).")
        return self.generate(torch.randn(n, self.code_dim, device=self.device))

    @property
    def latent_dim(self) -> int:
        return self.code_dim

    @torch.no_grad()
    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images decoded from codes `z` (the prior's points), in the data's normalisation."""
        with evaluating(self):
            return self.decode(z)

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        with evaluating(self):
            visuals = {"samples": (self.decode(self.fixed_z), self.grid_row)}
            if self.examples is None:
                return visuals
            mu = self.representation(self.examples)
            visuals["reconstructions"] = (torch.cat([self.examples, self.decode(mu)]), len(self.examples))
            half = len(self.examples) // 2
            first, second = mu[:half], mu[half:2 * half]
            t = torch.linspace(0, 1, self.interpolation_steps, device=self.device).view(1, -1, 1)
            steps = self.decode((first[:, None] * (1 - t) + second[:, None] * t).flatten(0, 1))
            steps = steps.view(half, self.interpolation_steps, *steps.shape[1:])
            rows = torch.cat([self.examples[:half, None], steps, self.examples[half:2 * half, None]], dim=1)
            visuals["interpolations"] = (rows.flatten(0, 1), self.interpolation_steps + 2)
        return visuals
