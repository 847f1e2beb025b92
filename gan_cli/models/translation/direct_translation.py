"""Direct transformation: the lecture's third way of unpaired translation (after the cycle and the shared
latent space), as in Taigman et al. 2017, "Unsupervised Cross-Domain Image Generation" (DTN).

One generator G: A -> B and one discriminator D judging images of B. With no cycle and no shared code the
content constraint is a perceptual term: G's output must keep its input's embedding in a fixed pretrained
network (VGG, or the digit classifier: gan_cli.losses.perceptual). G minimises

    L_GAN(G, D) + perceptual(a, G(a)) [+ lambda_identity ||G(b) - b||_1]

(the identity term is DTN's L_TID: G should leave an image of B as it is; off by default). D learns from a
pool of past translations as CycleGAN's do. Logged: G_GAN, perc, idt, D.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.losses.perceptual import PerceptualLoss
from gan_cli.models.translation.base import TranslationModel
from gan_cli.models.translation.cyclegan import identity_loss
from gan_cli.nets.image_pool import ImagePool


class DirectTranslation(TranslationModel):
    GENERATORS = {"AtoB": "G"}

    def __init__(self, generator: Callable[[], nn.Module], discriminator: Callable[[], nn.Module],
                 loss: AdversarialLoss, optimizer: Callable[..., Optimizer], perceptual: PerceptualLoss | None,
                 lr: PositiveFloat = 2e-4, lambda_identity: NonNegativeFloat = 0.0, pool_size: NonNegativeInt = 50,
                 lr_constant_epochs: NonNegativeInt = 100, lr_decay_epochs: NonNegativeInt = 100,
                 d_loss_weight: NonNegativeFloat = 0.5, init: str = "normal", init_gain: float = 0.02,
                 inference: str = "eval", num_examples: PositiveInt = 4) -> None:
        if perceptual is None:
            raise UserError("model=direct_translation needs its perceptual term (model.perceptual is null): without it "
                            "nothing ties a translation to its input. Choose model/perceptual=vgg (ImageNet VGG; "
                            "model.perceptual.weights_path=... offline) or model/perceptual=digits "
                            "model.perceptual.classifier_ckpt=<gan-train model=classifier run>/checkpoints/last.ckpt.")
        super().__init__(loss, optimizer, lr, lr_constant_epochs, lr_decay_epochs, d_loss_weight, init, init_gain,
                         inference, num_examples)
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer", "perceptual"])
        self.G, self.D = generator(), discriminator()
        self.init_weights()
        self.perceptual, self.lambda_identity = perceptual, lambda_identity
        self.fake_pool = ImagePool(pool_size)

    def discriminators(self) -> list[nn.Module]:
        return [self.D]

    # --- the objective -----------------------------------------------------------------------------
    def generator_terms(self, real_A: Tensor, real_B: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """G's loss terms and its translation fake_B = G(a)."""
        fake_B = self.G(real_A)
        terms = {"G_GAN": self.generator_adversarial_loss(self.D, fake_B, real_B),
                 "perc": self.perceptual(real_A, fake_B)}
        if self.lambda_identity > 0:
            terms["idt"] = identity_loss(self.G, real_B, self.lambda_identity)
        return terms, fake_B

    # --- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        """G first (D frozen), then D on real and pooled translated images of B. On steps without a generator
        update (k > 1 discriminator updates per generator update) the translation is drawn without gradients."""
        real_A, real_B = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        logs: dict[str, Tensor] = {}
        if self.generator_due():
            with self.toggled_optimizer(opt_g):
                terms, fake_B = self.generator_terms(real_A, real_B)
                logs |= self.update(opt_g, terms, "g_loss", [self.G])
            self.generator_updated()
        else:
            with torch.no_grad():
                fake_B = self.G(real_A)
        d_loss, _ = self.discriminator_loss(self.D, real_B, self.fake_pool.query(fake_B))
        logs |= self.update(opt_d, {"D": d_loss}, "d_loss", [self.D])
        self.discriminator_updated(self.D)
        self.log_step(logs)

    # --- pictures ----------------------------------------------------------------------------------
    def example_rows(self) -> list[Tensor]:
        """real_A, fake_B, then real_B (and G(b), what the identity term keeps, when it is on)."""
        rows = [self.example_A, self.translate(self.example_A), self.example_B]
        if self.lambda_identity > 0:
            rows.append(self.translate(self.example_B))
        return rows

    def image_pools(self) -> dict[str, ImagePool]:
        return {"fake_B": self.fake_pool}
