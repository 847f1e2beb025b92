"""pix2pix, Isola et al. 2016, "Image-to-Image Translation with Conditional Adversarial Networks", as in
the authors' reference code (junyanz/pytorch-CycleGAN-and-pix2pix).

A U-Net generator G maps an input image x to an output G(x); dropout is its only noise. The PatchGAN
discriminator D sees the input and an output joined along the channels, and judges every 70x70 patch.
The objective is

    G* = arg min_G max_D  L_cGAN(G, D) + lambda_L1 * E ||y - G(x)||_1,     lambda_L1 = 100,

with the reference's vanilla GAN loss (loss=nonsaturating, the default) and D's loss halved.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import Critic
from gan_cli.models.translation.base import TranslationModel


class Pix2Pix(TranslationModel):
    GENERATORS = {"AtoB": "G"}
    captures_update = True

    def __init__(self, generator: Callable[[], nn.Module], discriminator: Callable[[], nn.Module],
                 loss: AdversarialLoss, optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4,
                 lambda_L1: NonNegativeFloat = 100.0, lr_constant_epochs: NonNegativeInt = 100,
                 lr_decay_epochs: NonNegativeInt = 100, d_loss_weight: NonNegativeFloat = 0.5, init: str = "normal",
                 init_gain: float = 0.02, inference: str = "paper", num_examples: PositiveInt = 4) -> None:
        super().__init__(loss, optimizer, lr, lr_constant_epochs, lr_decay_epochs, d_loss_weight, init, init_gain,
                         inference, num_examples)
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.G, self.D = generator(), discriminator()
        self.init_weights()
        self.lambda_L1 = lambda_L1

    def discriminators(self) -> list[nn.Module]:
        return [self.D]

    def conditional_critic(self, inputs: Tensor) -> Critic:
        """D(x, y): the discriminator scores an output y together with the input x it was made from."""
        return Critic(self.D, lambda network, outputs: network(torch.cat([inputs, outputs], dim=1)))

    def generator_terms(self, critic: Critic, fake_B: Tensor, real_B: Tensor) -> dict[str, Tensor]:
        """G's loss: fool the discriminator, and stay close to the target in L1."""
        return {"G_GAN": self.generator_adversarial_loss(critic, fake_B, real_B), "G_L1": self.lambda_L1 * F.l1_loss(fake_B, real_B)}

    def training_step(self, batch: dict, batch_idx: int) -> None:
        self.log_step(self.run_update(self.translation_update, batch["A"], batch["B"]))

    def translation_update(self, real_A: Tensor, real_B: Tensor) -> dict[str, Tensor]:
        """A D update, and every k-th batch a G update (replayed from a CUDA graph under engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        with torch.set_grad_enabled(generator_due):
            fake_B = self.G(real_A)
        critic = self.conditional_critic(real_A)
        # D: (input, target) is real, (input, G(input)) is fake.
        d_loss, d_terms = self.discriminator_loss(critic, real_B, fake_B)
        logs = self.update(opt_d, d_loss, "d_loss", [self.D])
        self.discriminator_updated(self.D)
        logs |= {"train/D_real": d_terms["real"].detach(), "train/D_fake": d_terms["fake"].detach()}
        if generator_due:
            with self.toggled_optimizer(opt_g):
                terms = self.generator_terms(critic, fake_B, real_B)
                logs |= self.update(opt_g, terms, "g_loss", [self.G])
            self.generator_updated()
        return logs

    def example_rows(self) -> list[Tensor]:
        """input, output, target."""
        return [self.example_A, self.translate(self.example_A), self.example_B]
