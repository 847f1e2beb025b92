"""CycleGAN, Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", as in the authors' reference code (junyanz/pytorch-CycleGAN-and-pix2pix).

Two generators, G_A: A -> B (G in the paper) and G_B: B -> A (F), and two discriminators, D_A judging
images of B (D_Y) and D_B judging images of A (D_X). The generators minimise

    L_GAN(G_A, D_A) + L_GAN(G_B, D_B) + lambda_A ||G_B(G_A(a)) - a||_1 + lambda_B ||G_A(G_B(b)) - b||_1
        + lambda_identity * (lambda_B ||G_A(b) - b||_1 + lambda_A ||G_B(a) - a||_1)
        [+ perceptual(a, G_A(a)) + perceptual(b, G_B(b))],

with the least-squares adversarial loss by default (loss=lsgan), and each discriminator learns from a
pool of the last 50 generated images rather than only the newest ones. The optional perceptual term
(model/perceptual=vgg|digits, gan_cli.losses.perceptual) keeps each translation close to its input in a frozen
network's features; it is logged as perc_A and perc_B. The names of the logged terms
(G_A, cycle_A, idt_A, D_A, ...) are those of the reference code.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.losses.perceptual import PerceptualLoss
from gan_cli.models.translation.base import TranslationModel
from gan_cli.nets.image_pool import ImagePool


def cycle_loss(forward: nn.Module, backward: nn.Module, real: Tensor, weight: float) -> tuple[Tensor, Tensor, Tensor]:
    """weight * ||backward(forward(real)) - real||_1; also returns the translation and the reconstruction."""
    fake = forward(real)
    reconstructed = backward(fake)
    return weight * F.l1_loss(reconstructed, real), fake, reconstructed


def identity_loss(generator: nn.Module, target_domain_image: Tensor, weight: float) -> Tensor:
    """weight * ||G(y) - y||_1: a generator into domain Y should leave an image of Y unchanged."""
    return weight * F.l1_loss(generator(target_domain_image), target_domain_image)


class CycleGAN(TranslationModel):
    GENERATORS = {"AtoB": "G_A", "BtoA": "G_B"}
    captures_update = True

    def __init__(self, generator: Callable[[], nn.Module], discriminator: Callable[[], nn.Module],
                 loss: AdversarialLoss, optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4,
                 lambda_A: NonNegativeFloat = 10.0, lambda_B: NonNegativeFloat = 10.0,
                 lambda_identity: NonNegativeFloat = 0.5, pool_size: NonNegativeInt = 50,
                 lr_constant_epochs: NonNegativeInt = 100, lr_decay_epochs: NonNegativeInt = 100,
                 d_loss_weight: NonNegativeFloat = 0.5, init: str = "normal", init_gain: float = 0.02,
                 inference: str = "eval", num_examples: PositiveInt = 4,
                 perceptual: PerceptualLoss | None = None) -> None:
        super().__init__(loss, optimizer, lr, lr_constant_epochs, lr_decay_epochs, d_loss_weight, init, init_gain,
                         inference, num_examples)
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer", "perceptual"])
        self.G_A, self.G_B = generator(), generator()
        self.D_A, self.D_B = discriminator(), discriminator()
        self.init_weights()
        self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
        self.fake_A_pool, self.fake_B_pool = ImagePool(pool_size), ImagePool(pool_size)
        self.perceptual = perceptual

    def discriminators(self) -> list[nn.Module]:
        return [self.D_A, self.D_B]

    # --- the objective -----------------------------------------------------------------------------
    def generator_terms(self, real_A: Tensor, real_B: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The generators' loss terms, and the translations fake_A = G_B(b), fake_B = G_A(a)."""
        cycle_A, fake_B, _ = cycle_loss(self.G_A, self.G_B, real_A, self.lambda_A)
        cycle_B, fake_A, _ = cycle_loss(self.G_B, self.G_A, real_B, self.lambda_B)
        terms = {
            "G_A": self.generator_adversarial_loss(self.D_A, fake_B, real_B),
            "G_B": self.generator_adversarial_loss(self.D_B, fake_A, real_A),
            "cycle_A": cycle_A,
            "cycle_B": cycle_B,
        }
        if self.lambda_identity > 0:
            terms["idt_A"] = identity_loss(self.G_A, real_B, self.lambda_B * self.lambda_identity)
            terms["idt_B"] = identity_loss(self.G_B, real_A, self.lambda_A * self.lambda_identity)
        if self.perceptual is not None:
            terms["perc_A"] = self.perceptual(real_A, fake_B)
            terms["perc_B"] = self.perceptual(real_B, fake_A)
        return terms, fake_A, fake_B

    # --- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        """G_A and G_B first (D_A and D_B frozen), then D_A and D_B on pooled translations, as the reference's
        optimize_parameters. On steps without a generator update (k > 1 discriminator updates per generator
        update, e.g. loss=wgan_gp) the translations are drawn without gradients."""
        self.log_step(self.run_update(self.translation_update, batch["A"], batch["B"]))

    def capture_key(self) -> tuple:
        # while the pools fill, each step stores at a new place (a new key: never captured); once full, one graph
        return (*super().capture_key(), *(len(pool) for pool in self.image_pools().values()))

    def translation_update(self, real_A: Tensor, real_B: Tensor) -> dict[str, Tensor]:
        """The generators' update every k-th batch, and the discriminators' (replayed from a CUDA graph under
        engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        logs: dict[str, Tensor] = {}
        if self.generator_due():
            with self.toggled_optimizer(opt_g):
                terms, fake_A, fake_B = self.generator_terms(real_A, real_B)
                logs |= self.update(opt_g, terms, "g_loss", self.generators())
            self.generator_updated()
        else:
            with torch.no_grad():
                fake_A, fake_B = self.G_B(real_B), self.G_A(real_A)
        # D_A judges images of B (real, and translations from a pool of past ones), D_B those of A
        d_A, _ = self.discriminator_loss(self.D_A, real_B, self.fake_B_pool.query(fake_B))
        d_B, _ = self.discriminator_loss(self.D_B, real_A, self.fake_A_pool.query(fake_A))
        logs |= self.update(opt_d, {"D_A": d_A, "D_B": d_B}, "d_loss", self.discriminators())
        self.discriminator_updated(self.D_A, self.D_B)
        return logs

    # --- pictures ----------------------------------------------------------------------------------
    def example_rows(self) -> list[Tensor]:
        """real_A, fake_B, rec_A, idt_B, real_B, fake_A, rec_B, idt_A (the reference's visuals)."""
        real_A, real_B = self.example_A, self.example_B
        fake_B, fake_A = self.translate(real_A, "AtoB"), self.translate(real_B, "BtoA")
        rows = [real_A, fake_B, self.translate(fake_B, "BtoA")]
        if self.lambda_identity > 0:
            rows.append(self.translate(real_A, "BtoA"))
        rows += [real_B, fake_A, self.translate(fake_A, "AtoB")]
        if self.lambda_identity > 0:
            rows.append(self.translate(real_B, "AtoB"))
        return rows

    def image_pools(self) -> dict[str, ImagePool]:
        return {"fake_A": self.fake_A_pool, "fake_B": self.fake_B_pool}
