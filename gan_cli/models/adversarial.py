"""What every adversarial model shares: its objective (`loss=`), the discriminator's and the generator's
adversarial terms, the schedule of k discriminator updates per generator update (which survives a resume),
and the hook points through which `tricks=` (gan_cli.tricks) change training without touching a model's
training step:

- `discriminator_terms(critic, real, fake)`: D's loss terms; tricks augment its inputs and add or replace terms;
- `generator_adversarial_loss(critic, fake, real)`: G's adversarial term; tricks may swap the critic (unrolled)
  or the objective (feature matching) and add terms;
- `discriminator_updated(...)` / `generator_updated()`: called after each optimizer step (EMA, averages);
- `inference_generator(net)`: the network to sample with (EMA's average).
- `log_step(logs)`: on log steps, also what each trick's `logs()` keeps track of (tricks=[ada]'s p).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.base import GenerativeModule, grad_norm


class Critic:
    """A discriminator network and how a model calls it on images: `critic(images)` gives scores.

    `call(network, images)` adds what the model joins to the images (a label, pix2pix's input image); the
    default calls the network on the images alone. `using(other)` calls another network (a copy of the
    discriminator, as the unrolled GAN does) the same way.
    """

    def __init__(self, network: nn.Module, call: Callable[[nn.Module, Tensor], Tensor] | None = None) -> None:
        self.network, self.call = network, call

    def __call__(self, images: Tensor) -> Tensor:
        return self.call(self.network, images) if self.call else self.network(images)

    def using(self, network: nn.Module) -> "Critic":
        return Critic(network, self.call)


def as_critic(critic: Critic | nn.Module) -> Critic:
    return critic if isinstance(critic, Critic) else Critic(critic)


class AdversarialModule(GenerativeModule):
    """Base of the GAN models. `loss` is any AdversarialLoss; its `d_steps` (k) is honoured by asking
    `generator_due()` before each discriminator update and calling `discriminator_updated()` after it.

    Subclasses list their networks in `generators()` and `discriminators()` and set `optimizer`, `g_lr` and
    `d_lr` (or override `configure_optimizers`); their optimizers are (G's, D's) in that order.
    """

    def __init__(self, loss: AdversarialLoss) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.loss = loss
        self.d_updates = 0  # discriminator updates so far: decides when G is updated (saved in checkpoints)
        self.tricks = nn.ModuleDict()  # name -> Trick, attached by gan_cli.tricks.attach_tricks

    # --- networks ----------------------------------------------------------------------------------
    def generators(self) -> list[nn.Module]:
        raise NotImplementedError

    def discriminators(self) -> list[nn.Module]:
        raise NotImplementedError

    def networks(self) -> list[nn.Module]:
        return [*self.generators(), *self.discriminators()]

    def inference_generator(self, generator: nn.Module) -> nn.Module:
        """The network to draw samples with in place of `generator` (e.g. its moving average, tricks=[ema])."""
        for trick in self.tricks.values():
            generator = trick.inference_network(self, generator)
        return generator

    # --- the update in a CUDA graph (engine.capture_step) --------------------------------------------
    captured_counters = ("d_updates",)

    def capture_key(self) -> tuple:
        return (self.generator_due(),)

    def capture_refusal(self) -> str:
        """Tricks keep host state between steps (EMA's count, ADA's p schedule, the unrolled copies), so a model
        with tricks is not captured."""
        reason = super().capture_refusal()
        if not reason and self.tricks:
            reason = f"tricks={list(self.tricks)} keep state on the host between steps, which a replayed graph skips."
        return reason

    # --- the adversarial terms ---------------------------------------------------------------------
    def generator_due(self) -> bool:
        """Whether the generator is updated together with the coming discriminator update (every k-th)."""
        return (self.d_updates + 1) % self.loss.d_steps == 0

    def augment(self, images: Tensor) -> Tensor:
        """What the discriminator sees of `images` (real or generated): augmented by tricks=[diffaugment]."""
        for trick in self.tricks.values():
            images = trick.augment(images)
        return images

    def discriminator_terms(self, critic: Critic | nn.Module, real: Tensor, fake: Tensor,
                            ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """D's loss terms on real and generated images (plus the objective's penalty and the tricks' terms),
        and the raw scores. `fake` must already be detached from the generator."""
        critic = as_critic(critic)
        real, fake = self.augment(real), self.augment(fake)
        real_scores, fake_scores = critic(real), critic(fake)
        terms = {"real": self.loss.d_real_loss(real_scores), "fake": self.loss.d_fake_loss(fake_scores)}
        penalty = self.loss.d_penalty(critic, real, fake)
        if penalty is not None:
            terms["penalty"] = penalty
        for trick in self.tricks.values():
            trick.discriminator_terms(self, terms, critic, real, fake, real_scores)
        return terms, real_scores, fake_scores

    def generator_adversarial_loss(self, critic: Critic | nn.Module, fake: Tensor, real: Tensor) -> Tensor:
        """G's adversarial term for generated images `fake` (with their graph) judged by `critic`; `real` is
        the matching batch of real images (feature matching and unrolling use it)."""
        critic = as_critic(critic)
        for trick in self.tricks.values():
            critic = trick.generator_critic(self, critic, real, fake)
        fake_seen = self.augment(fake)
        loss = self.loss.g_loss(critic(fake_seen))
        for trick in self.tricks.values():
            loss = trick.generator_loss(self, loss, critic, fake_seen, real)
        return loss

    # --- after each update -------------------------------------------------------------------------
    def discriminator_updated(self, *discriminators: nn.Module) -> None:
        """Call after each discriminator update: applies the objective's post-step rule (e.g. clipping)."""
        for discriminator in discriminators:
            self.loss.after_d_step(discriminator)
        for trick in self.tricks.values():
            trick.after_discriminator_step(self)
        self.d_updates += 1

    def generator_updated(self) -> None:
        """Call after each generator update."""
        for trick in self.tricks.values():
            trick.after_generator_step(self)

    def configure_optimizers(self):
        """One optimizer for all generators at `g_lr` and one for all discriminators at `d_lr` (G's first), from
        the model's `optimizer` (the config's partial, Adam by default). A network trains only while it gets
        gradients (StackGAN's stages): Adam skips parameters without one."""
        opt_g = self.optimizer([p for g in self.generators() for p in g.parameters()], lr=self.g_lr)
        opt_d = self.optimizer([p for d in self.discriminators() for p in d.parameters()], lr=self.d_lr)
        return opt_g, opt_d

    def discriminator_optimizer(self):
        return self.optimizers()[1]

    def update_discriminator(self, optimizer, terms: dict[str, Tensor], real_scores: Tensor, fake_scores: Tensor,
                             discriminator: nn.Module) -> dict[str, Tensor]:
        """One update of `discriminator` on the sum of its `terms` (from discriminator_terms), then the post-step
        rules (discriminator_updated); returns d_loss (and on log steps discriminator_logs) to log."""
        logs = self.update(optimizer, sum(terms.values()), "d_loss", [discriminator],
                           lambda: self.discriminator_logs(terms, real_scores, fake_scores, discriminator))
        self.discriminator_updated(discriminator)
        return logs

    @torch.no_grad()
    def run_inference(self, generator: nn.Module, *inputs: Tensor | None) -> Tensor:
        """`generator`'s sampling network (see inference_generator) on `inputs`, in eval mode."""
        network = self.inference_generator(generator)
        was_training = network.training
        network.eval()
        images = network(*inputs)
        network.train(was_training)
        return images

    # --- logging and schedules ---------------------------------------------------------------------
    def discriminator_logs(self, terms: dict[str, Tensor], real_scores: Tensor, fake_scores: Tensor,
                           discriminator: nn.Module) -> dict[str, Tensor]:
        """What a log step records of a discriminator update (call after backward, before the step): its
        gradient norm, the mean D(x) and D(G(z)), and its terms besides the real and fake ones."""
        logs = {"train/grad_norm_D": grad_norm(discriminator),
                "train/D_x": self.loss.score(real_scores.detach()).mean(),
                "train/D_G_z": self.loss.score(fake_scores.detach()).mean()}
        for name, value in terms.items():  # the objective's penalty and the tricks' terms
            if name not in ("real", "fake"):
                logs[f"train/d_{name}"] = value.detach()
        return logs

    def log_step(self, logs: dict[str, Tensor], shown: tuple[str, ...] = ("d_loss", "g_loss")) -> None:
        """On log steps, log a step's values with both learning rates; `shown` go to the progress bar too
        (logging every step would cost time for values Lightning does not write)."""
        if not self.logs_this_step:
            return
        for trick in self.tricks.values():  # what the tricks keep track of (tricks=[ada]'s p)
            logs |= {f"train/{name}": value for name, value in trick.logs(self).items()}
        opt_g, opt_d = self.optimizers()
        logs["train/lr_G"] = opt_g.param_groups[0]["lr"]
        logs["train/lr_D"] = opt_d.param_groups[0]["lr"]
        self.log_dict(logs)
        self.log_dict({name: logs[f"train/{name}"] for name in shown if f"train/{name}" in logs}, prog_bar=True,
                      logger=False)

    def step_epoch_schedules(self) -> None:
        """Step the learning-rate schedules that count epochs. Called from on_train_epoch_end, before the epoch's
        checkpoint is written (ModelCheckpoint runs after that hook), so a resumed run goes on with the next
        epoch's rate."""
        with warnings.catch_warnings():
            # With k > 1 D updates per G update, G's optimizer may not have stepped yet in a short first epoch;
            # the schedule counts epochs, so that is harmless.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            for schedule in self.lr_schedulers():
                schedule.step()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_cli"]["d_updates"] = self.d_updates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.d_updates = checkpoint.get("gan_cli", {}).get("d_updates", 0)
