"""The matching-aware discriminator of Reed et al. 2016 (GAN-CLS, Algorithm 1), in terms of any
AdversarialLoss (`loss=`):

    s_r = D(x, h)          real image, matching text     -> scored as real
    s_w = D(x, h_wrong)    real image, mismatched text   -> scored as fake
    s_f = D(G(z, h), h)    fake image, matching text     -> scored as fake
    L_D = real(s_r) + (fake(s_w) + fake(s_f)) / 2,        L_G = g_loss(D(G(z, h), h))

so D must judge both realism and whether image and text match. The two fake terms are averaged as in the
authors' code (Algorithm 1 writes log(1 - s_w) + log(1 - s_f), each halved).
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule, Critic


def text_critic(discriminator: nn.Module, text: Tensor) -> Critic:
    """D(x | h): the discriminator called on images with the text embeddings (or codes) `text`."""
    return Critic(discriminator, lambda network, images: network(images, text))


def matching_terms(loss: AdversarialLoss, real_scores: Tensor, wrong_scores: Tensor, fake_scores: Tensor,
                   ) -> dict[str, Tensor]:
    """D's two terms from the three scores: "real" on s_r, "fake" the mean of the fake terms on s_w and s_f."""
    return {"real": loss.d_real_loss(real_scores),
            "fake": 0.5 * (loss.d_fake_loss(wrong_scores) + loss.d_fake_loss(fake_scores))}


def matching_discriminator_terms(module: AdversarialModule, discriminator: nn.Module, real: Tensor, fake: Tensor,
                                 text: Tensor, wrong_text: Tensor,
                                 ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """The matching-aware D loss terms of `module` (its objective, penalty and tricks), and the scores
    (s_r, s_f, s_w). `fake` = G(z, text), detached. Without tricks the terms are `matching_terms`; the
    objective's penalty (e.g. WGAN-GP) and the tricks' terms are those of the (real, fake) pair with the
    matching text, as for an ordinary conditional GAN."""
    terms, real_scores, fake_scores = module.discriminator_terms(text_critic(discriminator, text), real, fake)
    wrong_scores = text_critic(discriminator, wrong_text)(module.augment(real))
    # D's own "real" term stays (a trick may have replaced it, e.g. label smoothing); the fake term is averaged
    # with the mismatched pair's
    terms["fake"] = 0.5 * (module.loss.d_fake_loss(wrong_scores) + terms["fake"])
    return terms, real_scores, fake_scores, wrong_scores


def matching_generator_loss(module: AdversarialModule, discriminator: nn.Module, fake: Tensor, real: Tensor,
                            text: Tensor) -> Tensor:
    """G's adversarial term on D(G(z, h), h) (with its graph), with the objective and tricks of `module`."""
    return module.generator_adversarial_loss(text_critic(discriminator, text), fake, real)
