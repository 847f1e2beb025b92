"""What every adversarial model shares: its objective (`loss=`), the discriminator's loss terms, and the
schedule of k discriminator updates per generator update, which survives a resume."""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.base import GenerativeModule

Critic = Callable[[Tensor], Tensor]


class AdversarialModule(GenerativeModule):
    """Base of the GAN models. `loss` is any AdversarialLoss; its `d_steps` (k) is honoured by asking
    `generator_due()` before each discriminator update and calling `discriminator_updated()` after it."""

    def __init__(self, loss: AdversarialLoss) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.loss = loss
        self.d_updates = 0  # discriminator updates so far: decides when G is updated (saved in checkpoints)

    def generator_due(self) -> bool:
        """Whether the generator is updated together with the coming discriminator update (every k-th)."""
        return (self.d_updates + 1) % self.loss.d_steps == 0

    def discriminator_terms(self, critic: Critic, real: Tensor, fake: Tensor,
                            ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """D's loss terms on real and generated images (plus the objective's penalty, if it has one),
        and the raw scores. `fake` must already be detached from the generator."""
        real_scores, fake_scores = critic(real), critic(fake)
        terms = {"real": self.loss.d_real_loss(real_scores), "fake": self.loss.d_fake_loss(fake_scores)}
        penalty = self.loss.d_penalty(critic, real, fake)
        if penalty is not None:
            terms["penalty"] = penalty
        return terms, real_scores, fake_scores

    def discriminator_updated(self, *discriminators: nn.Module) -> None:
        """Call after each discriminator update: applies the objective's post-step rule (e.g. clipping)."""
        for discriminator in discriminators:
            self.loss.after_d_step(discriminator)
        self.d_updates += 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_cli"]["d_updates"] = self.d_updates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.d_updates = checkpoint.get("gan_cli", {}).get("d_updates", 0)
