"""`text_cgan`: GAN-INT-CLS (Reed et al. 2016, "Generative Adversarial Text to Image Synthesis").

G(z, phi(t)) draws an image for a sentence embedding; the matching-aware discriminator (CLS,
gan_cli.models.text_to_image.matching) is trained on three pairs per step: (real image, its text) as real, (fake image, its
text) and (real image, another image's text) as fake. INT (`interpolation` > 0): G is also trained on
interpolations beta * phi(t1) + (1 - beta) * phi(t2) of two captions' embeddings, for which there is no real
image, so only G's loss sees them (as in the authors' code).

Batches come from captioned data (data=mnist_5k_captions): {"image", "label", "text", "wrong_text"}.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, PositiveFloat
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.text_to_image.base import TextConditioned
from gan_cli.models.text_to_image.matching import matching_discriminator_terms, matching_generator_loss


class TextCGAN(TextConditioned, AdversarialModule):
    """GAN-INT-CLS: G(z, phi(t)) against a matching-aware D(x, phi(t)).

    `sample(n, labels=None, text=None)` draws for the given embeddings (n of them, or one for all); without
    them, for embeddings of training captions kept from the batches seen (of the given labels, if any).
    """

    captures_update = True

    config_name = "text_cgan"

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4, g_lr: PositiveFloat | None = None,
                 d_lr: PositiveFloat | None = None, interpolation: float = 1.0, interpolation_beta: float = 0.5,
                 kl_weight: NonNegativeFloat = 1.0, num_classes: int = 0, caption_bank: int = 2048,
                 figure_captions: int = 10, samples_per_caption: int = 8) -> None:
        super().__init__(loss)
        if interpolation < 0 or not 0 <= interpolation_beta <= 1:
            raise UserError(f"model.interpolation={interpolation} must be >= 0 (the weight of the INT term, 0: off) and "
                            f"model.interpolation_beta={interpolation_beta} in [0, 1].")
        if generator.text_dim != discriminator.text_dim:
            raise UserError(f"G takes {generator.text_dim}-D and D {discriminator.text_dim}-D text embeddings: set "
                            "both to ${text_encoder.dim}.")
        self.generator, self.discriminator = generator, discriminator
        self.optimizer = optimizer
        self.g_lr, self.d_lr = g_lr or lr, d_lr or lr
        self.interpolation, self.interpolation_beta, self.kl_weight = interpolation, interpolation_beta, kl_weight
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.latent_dim, self.num_classes = generator.latent_dim, num_classes
        self.init_text_conditioning(generator.text_dim, self.latent_dim, caption_bank, figure_captions,
                                    samples_per_caption)

    def generators(self) -> list[nn.Module]:
        return [self.generator]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator]

    # --- sampling ----------------------------------------------------------------------------------
    def sample_noise(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, text: Tensor | None = None) -> Tensor:
        """n images G(z, phi(t)) in eval mode: for `text` ((n, dim) or (1, dim) embeddings), else for training
        captions (of `labels`, if given)."""
        return self.run_inference(self.generator, self.sample_noise(n), self.sampling_text(n, labels, text))

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        if not self.figure_captions:
            return {}
        images = self.run_inference(self.generator, *self.figure_inputs())
        return {"captions": (self.captioned_figure(images, self.figure_captions), 1)}

    # --- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        missing = {"text", "wrong_text"} - set(batch)
        if missing:
            raise UserError(f"model=text_cgan needs batches with caption embeddings ({', '.join(sorted(missing))} "
                            "missing): use captioned data, data=mnist_5k_captions.")
        self.remember(batch["text"], batch.get("label"))
        self.log_step(self.run_update(self.adversarial_update, batch["image"], batch["text"], batch["wrong_text"]))

    def adversarial_update(self, real: Tensor, text: Tensor, wrong: Tensor) -> dict[str, Tensor]:
        """A D update, and every k-th batch a G update (replayed from a CUDA graph under engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        logs = self.discriminator_step(real, text, wrong, opt_d)
        if generator_due:
            logs |= self.generator_step(real, text, opt_g)
        return logs

    def discriminator_step(self, real: Tensor, text: Tensor, wrong: Tensor, opt_d) -> dict:
        """GAN-CLS: (real, text) real; (fake, text) and (real, wrong text) fake, their terms averaged."""
        with torch.no_grad():
            fake = self.generator(self.sample_noise(real.size(0)), text)
        terms, real_scores, fake_scores, wrong_scores = matching_discriminator_terms(
            self, self.discriminator, real, fake, text, wrong)
        logs = self.update_discriminator(opt_d, terms, real_scores, fake_scores, self.discriminator)
        if self.logs_this_step:
            logs["train/D_x_wrong_text"] = self.loss.score(wrong_scores.detach()).mean()
        return logs

    def generator_step(self, real: Tensor, text: Tensor, opt_g) -> dict:
        """G's loss on D(G(z, h), h), plus the INT term on interpolated captions and CA's KL term."""
        with self.toggled_optimizer(opt_g):
            g_loss, kl = self.generated_loss(real, text)
            extra = {}
            if self.interpolation:
                mixed = self.interpolation_beta * text + (1 - self.interpolation_beta) * text[
                    torch.randperm(text.size(0), device=text.device)]
                g_int, _ = self.generated_loss(real, mixed)  # one KL term: that of the batch's own captions
                g_loss = g_loss + self.interpolation * g_int
                extra["train/g_interpolation"] = g_int.detach()
            if kl is not None:
                g_loss = g_loss + self.kl_weight * kl
                extra["train/kl"] = kl.detach()
            logs = self.update(opt_g, g_loss, "g_loss", [self.generator])
        self.generator_updated()
        return logs | extra

    def generated_loss(self, real: Tensor, text: Tensor) -> tuple[Tensor, Tensor | None]:
        """G's adversarial term for fresh fakes of `text`, and the KL of its conditioning augmentation (or None)."""
        code, kl = self.generator.encode_text(text)
        fake = self.generator.decode(self.sample_noise(real.size(0)), code)
        return matching_generator_loss(self, self.discriminator, fake, real, text), kl
