"""UNIT, Liu et al. 2017, "Unsupervised Image-to-Image Translation Networks", with the weight sharing of CoGAN
(Liu & Tuzel 2016), after the authors' PyTorch code (mingyuliutw/UNIT: trainer.py UNIT_Trainer).

Both domains are projected to one latent space: an encoder and a decoder per domain whose last / first blocks
are shared (gan_cli.models.translation.unit_nets.UNITGenerator). With mu = E_X(x) and z = mu + N(0, I), the generator minimises

    gan_w (L_GAN(D_A, x_ba) + L_GAN(D_B, x_ab))                         translations judged per domain
    + recon_x_w (|G_A(z_a) - a|_1 + |G_B(z_b) - b|_1)                   reconstruction within a domain (VAE)
    + recon_kl_w (KL(mu_a) + KL(mu_b))                                  the VAE's prior on the code
    + recon_x_cyc_w (|G_A(z_aba) - a|_1 + |G_B(z_bab) - b|_1)           the cycle through the latent space:
    + recon_kl_cyc_w (KL(mu_ab) + KL(mu_ba))                            encode as X, decode as Y, encode as Y,
                                                                        decode as X
    [+ latent_gan_w L_domain(E)]   [+ perceptual(a, x_ab) + perceptual(b, x_ba)]   (optional terms)

where x_ab = G_B(z_a), mu_ab = E_B(x_ab), z_aba = mu_ab + noise. KL is the reference's mean(mu^2): for
q(z|x) = N(mu, I) the closed form KL(N(mu, I) || N(0, I)) = ||mu||^2 / 2, and mean(mu^2) = 2 KL / mu.numel().
The discriminators D_A (judging images of A, the reference's dis_a) and D_B take their loss from `loss=`
(least squares by default, the reference's gan_type lsgan), not halved. As in the reference, each step updates
the discriminators first, on translations made with the current generator, then the generator.

The optional latent discriminator D_z (the lecture's domain discriminator on the code) is a domain classifier
(logistic loss: codes z of A are labelled 1, of B 0); the encoders are trained to fool it with the labels
flipped, weighted by latent_gan_w (0 turns it off and D_z is not built).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.losses.perceptual import PerceptualLoss
from gan_cli.models.translation.base import TranslationModel, translate_images
from gan_cli.models.translation.unit_nets import UNITGenerator

OTHER = {"A": "B", "B": "A"}


def latent_kl(mu: Tensor) -> Tensor:
    """The reference's KL term for q(z|x) = N(mu, I): mean(mu^2), i.e. 2 KL(N(mu, I) || N(0, I)) / mu.numel()."""
    return mu.pow(2).mean()


@dataclass
class LatentPass:
    """What one domain's images go through in a generator step (X the domain, Y the other one)."""

    mu: Tensor  # E_X(x)
    z: Tensor  # mu + noise
    reconstruction: Tensor  # G_X(z)
    translation: Tensor  # G_Y(z)
    cycle_mu: Tensor  # E_Y(G_Y(z))
    cycle: Tensor | None  # G_X(cycle_mu + noise); None when recon_x_cyc_w is 0


def domain_logits_loss(logits: Tensor, from_A: bool) -> Tensor:
    """Logistic loss of the latent domain classifier for codes labelled 'from A' (1) or 'from B' (0)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(from_A)))


class UNIT(TranslationModel):
    GENERATORS = {"AtoB": "G_AB", "BtoA": "G_BA"}

    def __init__(self, generator: Callable[[], UNITGenerator], discriminator: Callable[[], nn.Module],
                 loss: AdversarialLoss, optimizer: Callable[..., Optimizer], lr: PositiveFloat = 1e-4,
                 gan_w: float = 1.0, recon_x_w: float = 10.0, recon_kl_w: float = 0.01, recon_x_cyc_w: float = 10.0,
                 recon_kl_cyc_w: float = 0.01, latent_gan_w: float = 0.0,
                 latent_discriminator: Callable[..., nn.Module] | None = None, perceptual: PerceptualLoss | None = None,
                 lr_constant_epochs: NonNegativeInt = 100, lr_decay_epochs: NonNegativeInt = 100,
                 d_loss_weight: NonNegativeFloat = 1.0, init: str = "kaiming", init_gain: float = 0.02,
                 inference: str = "eval", num_examples: PositiveInt = 4) -> None:
        super().__init__(loss, optimizer, lr, lr_constant_epochs, lr_decay_epochs, d_loss_weight, init, init_gain,
                         inference, num_examples)
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer", "latent_discriminator",
                                          "perceptual"])
        if latent_gan_w < 0:
            raise UserError(f"model.latent_gan_w={latent_gan_w}: give a weight >= 0 (0 turns the latent "
                            "discriminator off).")
        if latent_gan_w > 0 and latent_discriminator is None:
            raise UserError("model.latent_gan_w > 0 needs model.latent_discriminator (a network node, e.g. "
                            "_target_: gan_cli.models.translation.unit_nets.LatentDiscriminator with _partial_: true).")
        self.G = generator()
        self.D_A, self.D_B = discriminator(), discriminator()
        self.D_z = latent_discriminator(channels=self.G.latent_channels) if latent_gan_w > 0 else None
        self.init_weights()
        self.gan_w, self.recon_x_w, self.recon_kl_w = gan_w, recon_x_w, recon_kl_w
        self.recon_x_cyc_w, self.recon_kl_cyc_w, self.latent_gan_w = recon_x_cyc_w, recon_kl_cyc_w, latent_gan_w
        self.perceptual = perceptual

    # --- networks ----------------------------------------------------------------------------------
    def generators(self) -> list[nn.Module]:
        return [self.G]  # one module: the shared blocks must reach the optimizer once

    def discriminators(self) -> list[nn.Module]:
        return [self.D_A, self.D_B] + ([self.D_z] if self.D_z is not None else [])

    @property
    def G_AB(self) -> nn.Module:
        """encoder A + decoder B (the shared blocks in between)."""
        return self.G.translator("A", "B")

    @property
    def G_BA(self) -> nn.Module:
        return self.G.translator("B", "A")

    # --- the objective -----------------------------------------------------------------------------
    def latent_pass(self, images: Tensor, domain: str) -> LatentPass:
        """Encode as X, decode as X and as Y, encode the translation as Y, decode that code as X."""
        other = OTHER[domain]
        mu = self.G.encode(images, domain)
        z = self.G.sample(mu)
        translation = self.G.decode(z, other)
        cycle_mu = self.G.encode(translation, other)
        cycle = self.G.decode(self.G.sample(cycle_mu), domain) if self.recon_x_cyc_w > 0 else None
        return LatentPass(mu, z, self.G.decode(z, domain), translation, cycle_mu, cycle)

    def generator_terms(self, real_A: Tensor, real_B: Tensor) -> tuple[dict[str, Tensor], LatentPass, LatentPass]:
        """The generator's weighted loss terms (named as the reference's loss_gen_*), and both passes."""
        a, b = self.latent_pass(real_A, "A"), self.latent_pass(real_B, "B")
        terms = {
            "adv_A": self.gan_w * self.generator_adversarial_loss(self.D_A, b.translation, real_A),
            "adv_B": self.gan_w * self.generator_adversarial_loss(self.D_B, a.translation, real_B),
            "recon_x_A": self.recon_x_w * F.l1_loss(a.reconstruction, real_A),
            "recon_x_B": self.recon_x_w * F.l1_loss(b.reconstruction, real_B),
            "kl_A": self.recon_kl_w * latent_kl(a.mu),
            "kl_B": self.recon_kl_w * latent_kl(b.mu),
            "kl_cyc_A": self.recon_kl_cyc_w * latent_kl(a.cycle_mu),
            "kl_cyc_B": self.recon_kl_cyc_w * latent_kl(b.cycle_mu),
        }
        if a.cycle is not None:
            terms["cyc_x_A"] = self.recon_x_cyc_w * F.l1_loss(a.cycle, real_A)
            terms["cyc_x_B"] = self.recon_x_cyc_w * F.l1_loss(b.cycle, real_B)
        if self.D_z is not None:  # the encoders fool the domain classifier: A's codes should pass for B's and back
            terms["latent_adv"] = self.latent_gan_w * (domain_logits_loss(self.D_z(a.z), from_A=False)
                                                       + domain_logits_loss(self.D_z(b.z), from_A=True))
        if self.perceptual is not None:  # keep each input's and its translation's features close
            terms["perc_A"] = self.perceptual(real_A, a.translation)
            terms["perc_B"] = self.perceptual(real_B, b.translation)
        return terms, a, b

    @torch.no_grad()
    def discriminator_inputs(self, real_A: Tensor, real_B: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Translations x_ba, x_ab of the current generator (with the latent noise, as the reference's dis_update)
        and the codes z_a, z_b."""
        z_a, z_b = self.G.sample(self.G.encode(real_A, "A")), self.G.sample(self.G.encode(real_B, "B"))
        return self.G.decode(z_b, "A"), self.G.decode(z_a, "B"), z_a, z_b

    def training_step(self, batch: dict, batch_idx: int) -> None:
        real_A, real_B = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        # The discriminators first, then the generator (the reference's dis_update, gen_update).
        fake_A, fake_B, z_a, z_b = self.discriminator_inputs(real_A, real_B)
        d_A, _ = self.discriminator_loss(self.D_A, real_A, fake_A)
        d_B, _ = self.discriminator_loss(self.D_B, real_B, fake_B)
        d_terms = {"D_A": self.gan_w * d_A, "D_B": self.gan_w * d_B}
        if self.D_z is not None:
            d_terms["D_z"] = self.latent_gan_w * (domain_logits_loss(self.D_z(z_a), from_A=True)
                                                  + domain_logits_loss(self.D_z(z_b), from_A=False))
        logs = self.update(opt_d, d_terms, "d_loss", self.discriminators())
        self.discriminator_updated(self.D_A, self.D_B)
        if generator_due:  # every k-th step with k > 1 discriminator steps per generator step (e.g. loss=wgan_gp)
            with self.toggled_optimizer(opt_g):
                terms, _, _ = self.generator_terms(real_A, real_B)
                logs |= self.update(opt_g, terms, "g_loss", self.generators())
            self.generator_updated()
        self.log_step(logs)

    # --- translating -------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if not hasattr(self.trainer.datamodule, "examples"):
            raise UserError("model=unit translates between two image domains: give it unpaired image data "
                            "(data=unpaired_folder data.root=..., data=horse2zebra, ...), not single images.")
        super().on_fit_start()

    def map_images(self, images: Tensor, source: str, target: str) -> Tensor:
        """Encode normalised images of any size as `source` and decode them as `target` (the mean code)."""
        translator = self.inference_generator(self.G).translator(source, target)
        return translate_images(translator, images, self.inference)

    def translator(self, direction: str) -> nn.Module:
        """Encoder of the source domain and decoder of the target (the shared blocks in between)."""
        if direction not in self.GENERATORS:
            raise UserError(f"UNIT translates {' and '.join(self.GENERATORS)}, not {direction}.")
        return self.inference_generator(self.G).translator(direction[0], direction[-1])

    @classmethod
    def translator_from(cls, model_config: dict, state_dict: dict, direction: str) -> nn.Module:
        """Both domains' encoders and decoders (they share blocks), with the source's encoder and the target's
        decoder chosen."""
        generator = instantiate(model_config["generator"])()
        generator.load_state_dict({k.removeprefix("G."): v for k, v in state_dict.items() if k.startswith("G.")})
        return generator.translator(direction[0], direction[-1])

    def example_rows(self) -> list[Tensor]:
        """Per domain X: real, reconstruction, translation, translated back (the reference's image display)."""
        rows = []
        for domain, real in (("A", self.example_A), ("B", self.example_B)):
            other = OTHER[domain]
            translation = self.map_images(real, domain, other)
            rows += [real, self.map_images(real, domain, domain), translation,
                     self.map_images(translation, other, domain)]
        return rows
