"""GP-GAN's Blending GAN, Wu et al. 2017, "GP-GAN: Towards Realistic High-Resolution Image Blending", as in the
authors' code (wuhuikai/GP-GAN: train_blending_gan.py, updater.py).

An encoder-decoder G maps a copy-and-paste composite x to a low-resolution blend G(x); a DCGAN critic D judges
G's blends against the clean images y the composites were made from (D does not see x). G minimises

    lambda * ||G(x) - y||^2 + (1 - lambda) * L_adv(G(x)),        lambda = 0.999 (`l2_weight`),

the L2 term a mean over pixels in the data's normalised space, L_adv the run's adversarial objective (`loss=`,
the Wasserstein critic with weight clipping by default). As in the authors' updater, the critic takes
`critic_boost` (100) updates per G update for the first `critic_boost_first` (25) G updates and at every
`critic_boost_every`-th (500th) one, and the loss's d_steps (5) otherwise.

`low_res_blend(composites)` is what gan-blend uses: composites in [0, 1] at any size, resized to G's size,
blended, and given back in [0, 1]; the Gaussian-Poisson solver (gan_cli.blending) then adds the detail.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.data.datamodule import denormalize
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.contract import Blender


class GPGAN(AdversarialModule, Blender):
    """The Blending GAN: G(composite) -> blend, trained with L2 to the clean image and a critic on blends."""

    no_samples_reason = ("it blends a pasted region into an image rather than drawing images from noise: use "
                         "gan-blend ckpt_path=... src=SRC dst=DST mask=MASK output=OUT.png.")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4, g_lr: PositiveFloat | None = 2e-3,
                 d_lr: PositiveFloat | None = None, l2_weight: float = 0.999, critic_boost: int | None = 100,
                 critic_boost_first: int = 25, critic_boost_every: int = 500, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), num_examples: PositiveInt = 8) -> None:
        super().__init__(loss)
        if not 0.0 <= l2_weight <= 1.0:
            raise UserError(f"model.l2_weight={l2_weight}: lambda weighs L2 against the adversarial term and must lie "
                            f"in [0, 1] (the paper's 0.999).")
        if critic_boost is not None and (critic_boost < 1 or critic_boost_first < 0 or critic_boost_every < 1):
            raise UserError(f"model.critic_boost={critic_boost}, critic_boost_first={critic_boost_first}, "
                            f"critic_boost_every={critic_boost_every}: give at least 1 critic update, a first phase "
                            f">= 0 and a period >= 1 (the authors' 100, 25, 500), or critic_boost=null to turn it off.")
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer", "mean", "std"])
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.hparams.update(mean=self.mean, std=self.std)  # plain lists: checkpoints load with weights_only=True
        self.generator, self.discriminator = generator, discriminator
        self.optimizer, self.g_lr, self.d_lr = optimizer, g_lr or lr, d_lr or lr
        self.l2_weight = l2_weight
        self.critic_boost, self.critic_boost_first, self.critic_boost_every = (critic_boost, critic_boost_first,
                                                                               critic_boost_every)
        self.num_examples = num_examples
        self.image_size: int = generator.image_size
        self.channels: int = generator.channels
        self._position = (0, 0, 0)  # (d_updates, G updates, D updates since the last G update): a cache

    def generators(self) -> list[nn.Module]:
        return [self.generator]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator]

    # --- the critic's schedule -------------------------------------------------------------------------
    def critic_updates(self, g_updates: int) -> int:
        """How many critic updates precede G's update number `g_updates` (counted from 0)."""
        boosted = self.critic_boost is not None and (g_updates < self.critic_boost_first
                                                     or g_updates % self.critic_boost_every == 0)
        return self.critic_boost if boosted else self.loss.d_steps

    def schedule_position(self) -> tuple[int, int]:
        """(G updates so far, critic updates since the last one), derived from the critic updates so far
        (`d_updates`, kept in checkpoints): a resumed run goes on exactly where it stopped."""
        done, g_updates, since = self._position
        if done > self.d_updates:
            done, g_updates, since = 0, 0, 0
        for _ in range(self.d_updates - done):
            since += 1
            if since >= self.critic_updates(g_updates):
                g_updates, since = g_updates + 1, 0
        self._position = (self.d_updates, g_updates, since)
        return g_updates, since

    def generator_due(self) -> bool:
        g_updates, since = self.schedule_position()
        return since + 1 >= self.critic_updates(g_updates)

    # --- the losses ------------------------------------------------------------------------------------
    def generator_terms(self, blend: Tensor, target: Tensor) -> dict[str, Tensor]:
        """G's two terms, unweighted: the mean squared error to the clean image and the adversarial term."""
        return {"l2": F.mse_loss(blend, target),
                "adversarial": self.generator_adversarial_loss(self.discriminator, blend, target)}

    def generator_loss(self, terms: dict[str, Tensor]) -> Tensor:
        """lambda * L2 + (1 - lambda) * adversarial."""
        return self.l2_weight * terms["l2"] + (1 - self.l2_weight) * terms["adversarial"]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        composite, target = batch["composite"], batch["target"]
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        with torch.set_grad_enabled(generator_due):
            blend = self.generator(composite)
        # the critic: clean images are real, G's blends are fake
        terms, real_scores, fake_scores = self.discriminator_terms(self.discriminator, target, blend.detach())
        logs = self.update_discriminator(opt_d, terms, real_scores, fake_scores, self.discriminator)
        if generator_due:
            with self.toggled_optimizer(opt_g):
                g_terms = self.generator_terms(blend, target)
                logs |= self.update(opt_g, self.generator_loss(g_terms), "g_loss", [self.generator])
            self.generator_updated()
            logs |= {"train/g_l2": g_terms["l2"].detach(), "train/g_adversarial": g_terms["adversarial"].detach()}
        self.log_step(logs, shown=("d_loss", "g_loss", "g_l2"))

    # --- blending --------------------------------------------------------------------------------------
    def blend(self, composites: Tensor) -> Tensor:
        """G's blends of normalised composites at G's size, in eval mode (the EMA average with tricks=[ema])."""
        return self.run_inference(self.generator, composites)

    @torch.no_grad()
    def low_res_blend(self, composites: Tensor) -> Tensor:
        """Composites in [0, 1] (C x H x W or N x C x H x W, any size) -> G's blends in [0, 1] at G's size.

        Larger composites are shrunk with an antialiased bilinear filter (the aspect ratio is not kept, as
        in the authors' gp_gan.py); the Gaussian-Poisson solver stretches the blend back.
        """
        single = composites.dim() == 3
        images = composites[None] if single else composites
        if images.size(1) != self.channels:
            raise UserError(f"The composite has {images.size(1)} channels, but this Blending GAN was trained on "
                            f"{self.channels}-channel images.")
        images = images.to(self.device, torch.float32)
        if images.shape[-2:] != (self.image_size, self.image_size):
            shrink = max(images.shape[-2:]) > self.image_size
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=shrink)
        mean = torch.as_tensor(self.mean, device=self.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, device=self.device).view(1, -1, 1, 1)
        blends = denormalize(self.blend((images - mean) / std), self.mean, self.std)
        return blends[0] if single else blends

    # --- pictures --------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        examples = self.trainer.datamodule.examples(self.num_examples)
        self.register_buffer("example_composites", examples["composite"].to(self.device), persistent=False)
        self.register_buffer("example_targets", examples["target"].to(self.device), persistent=False)

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """Rows: composites, G's blends, the clean images."""
        if getattr(self, "example_composites", None) is None:
            return {}
        rows = [self.example_composites, self.blend(self.example_composites), self.example_targets]
        return {"blends": (torch.cat(rows), rows[0].size(0))}
