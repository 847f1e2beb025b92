"""Noise-to-image GANs: `gan` (Goodfellow et al. 2014), `dcgan` (Radford et al. 2015) and `cgan`
(Mirza & Osindero 2014) are this one module with different networks.

The training step is Algorithm 1 of Goodfellow et al.: every batch updates the discriminator on a fresh
minibatch of data and noise, and every k-th batch (k = `loss.d_steps`) the generator is updated too.
The objective is the `loss` object, so any adversarial loss fits any network pair.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.models.contract import LatentSampler, Sampler


class NoiseToImage(Sampler):
    """A Sampler whose images are `generate(sample_noise(n), labels)` (GAN, StyleGAN2 and LAPGAN); its noise is a
    latent vector of `latent_dim` unless a model says otherwise."""

    def sample_noise(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """`n` images from G in eval mode (labels drawn at random for a conditional model if not given)."""
        if self.num_classes and labels is None:
            labels = self.sample_labels(n)
        return self.generate(self.sample_noise(n), labels)

    def fix_grid_noise(self, num_samples: int, latent_dim: int, per_row: int = 8) -> None:
        """Fixed noise for the logged sample grid (buffers: checkpoints keep it); a conditional model's grid has
        `per_row` samples of each label, row r all label r."""
        if self.num_classes:
            self.register_buffer("fixed_labels", torch.arange(self.num_classes).repeat_interleave(per_row))
            num_samples = self.num_classes * per_row
        self.grid_row = per_row
        self.register_buffer("fixed_z", torch.randn(num_samples, latent_dim))

    @torch.no_grad()
    def grid_samples(self) -> tuple[Tensor, int]:
        """The logged grid: the images of the fixed noise (and labels), and the images a row."""
        return self.generate(self.fixed_z, getattr(self, "fixed_labels", None)), self.grid_row


class GAN(AdversarialModule, NoiseToImage, LatentSampler):
    """A generator G(z[, y]) and a discriminator D(x[, y]) trained against each other.

    The networks are conditional when the generator has `num_classes` > 0: the label of each real
    image goes to D, and G gets the same labels for its fakes.
    """

    captures_update = True

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4, g_lr: PositiveFloat | None = None,
                 d_lr: PositiveFloat | None = None, num_samples: PositiveInt = 64, conditional: bool = False) -> None:
        super().__init__(loss)
        self.generator, self.discriminator = generator, discriminator
        self.optimizer = optimizer
        self.g_lr, self.d_lr = g_lr or lr, d_lr or lr
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.latent_dim: int = generator.latent_dim
        self.num_classes: int = getattr(generator, "num_classes", 0)
        if conditional and not self.num_classes:
            raise UserError(
                "This model is class-conditional but the data has no labels (data.num_classes=0). Use labelled "
                "data (data=mnist_5k, mnist, fashion_mnist, cifar10), or data=image_folder with "
                "data.dataset.labels_from_subfolders=true data.num_classes=N, or an unconditional model for "
                "unlabelled data (model=dcgan, sngan or stylegan2; gan-train's default model is the conditional "
                "cgan)."
            )
        self.fix_grid_noise(num_samples, self.latent_dim)

    def generators(self) -> list[nn.Module]:
        return [self.generator]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator]

    def critic(self, labels: Tensor | None) -> Critic:
        """D(x | y): the discriminator with the batch's labels (none for an unconditional model)."""
        return Critic(self.discriminator, lambda network, images: network(images, labels))

    # --- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """G(z | labels) in eval mode, with the network that samples (the moving average with tricks=[ema])."""
        return self.run_inference(self.generator, z, labels)

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        return {"samples": self.grid_samples()}

    # --- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        labels = batch["label"] if self.num_classes else None
        self.log_step(self.run_update(self.adversarial_update, batch["image"], labels))

    def adversarial_update(self, real: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        """A D update, and every k-th batch a G update (replayed from a CUDA graph under engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        logs = self.discriminator_step(real, labels, opt_d)
        if generator_due:
            logs |= self.generator_step(real, labels, opt_g)
        return logs

    def discriminator_step(self, real: Tensor, labels: Tensor | None, opt_d) -> dict:
        """Ascend V(D, G) on a minibatch of real images and a minibatch of fakes."""
        with torch.no_grad():
            fake = self.generator(self.sample_noise(real.size(0)), labels)
        terms, real_scores, fake_scores = self.discriminator_terms(self.critic(labels), real, fake)
        return self.update_discriminator(opt_d, terms, real_scores, fake_scores, self.discriminator)

    def generator_step(self, real: Tensor, labels: Tensor | None, opt_g) -> dict:
        """Descend the generator's loss on a fresh minibatch of noise (D's weights frozen)."""
        with self.toggled_optimizer(opt_g):
            fake = self.generator(self.sample_noise(real.size(0)), labels)
            g_loss = self.generator_adversarial_loss(self.critic(labels), fake, real)
            logs = self.update(opt_g, g_loss, "g_loss", [self.generator])
        self.generator_updated()
        return logs
