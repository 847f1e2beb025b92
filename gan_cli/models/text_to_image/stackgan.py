"""StackGAN: Zhang et al. 2016, "StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative
Adversarial Networks".

Stage-I draws a low-resolution image (data.image_size / 4) from z and the text; Stage-II refines it with the text
to data.image_size. Both generators draw their condition by conditioning augmentation and pay its KL term; both
discriminators are matching-aware (Reed et al. 2016): (real, matching text) is real, (fake, matching text) and
(real, mismatched text) are fake.

`stage`: 1 trains Stage-I alone; 2 trains Stage-II on top of a frozen Stage-I read from `stage1_ckpt` (a gan-train
stackgan stage-1 checkpoint); both trains Stage-I for `stage1_epochs` epochs, then Stage-II on the frozen Stage-I,
in one run. The phase is derived from the epoch, so a resumed run goes on in the right one.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import NonNegativeFloat, PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.text_to_image.base import TextConditioned
from gan_cli.models.text_to_image.conditioning import kl_to_standard_normal
from gan_cli.models.text_to_image.matching import matching_discriminator_terms, matching_generator_loss
from gan_cli.nets.layers import dcgan_init_

STAGES = ("1", "2", "both")
#: rows (captions) of the logged figure, and the size of the bank of training texts that `sample` draws from
FIGURE_ROWS, SAMPLES_PER_CAPTION, BANK_SIZE = 8, 4, 1024


class StackGAN(TextConditioned, AdversarialModule):
    """The two stages of StackGAN with their discriminators. Networks come from factories called with
    `text_dim`, `channels` and `image_size` (each stage's own size)."""

    captures_update = True

    config_name = "stackgan"

    def __init__(self, loss: AdversarialLoss, optimizer: Callable[..., Optimizer],
                 stage1_generator: Callable[..., nn.Module], stage1_discriminator: Callable[..., nn.Module],
                 stage2_generator: Callable[..., nn.Module], stage2_discriminator: Callable[..., nn.Module],
                 text_dim: int, channels: PositiveInt = 3, image_size: PositiveInt = 256, num_classes: int = 0,
                 stage: str | int = "1", stage1_ckpt: str | None = None, stage1_epochs: int = 1,
                 kl_weight: NonNegativeFloat = 2.0, lr: PositiveFloat = 2e-4, g_lr: PositiveFloat | None = None,
                 d_lr: PositiveFloat | None = None) -> None:
        super().__init__(loss)
        self.stage = str(stage)
        if self.stage not in STAGES:
            raise UserError(f"model.stage={stage}: use 1 (Stage-I alone), 2 (Stage-II on a Stage-I checkpoint, "
                            "model.stage1_ckpt=...) or both (Stage-I for model.stage1_epochs epochs, then Stage-II).")
        if self.stage == "2" and not stage1_ckpt:
            raise UserError("model.stage=2 trains Stage-II on top of a trained Stage-I: give its checkpoint, "
                            "model.stage1_ckpt=<stage-1 run>/checkpoints/last.ckpt (from gan-train model=stackgan "
                            "model.stage=1), or train both in one run with model.stage=both.")
        if self.stage == "both" and stage1_epochs < 1:
            raise UserError(f"model.stage1_epochs={stage1_epochs}: Stage-I needs at least one epoch before Stage-II.")
        if image_size % 4 or image_size // 4 < 8 or (image_size // 4) & (image_size // 4 - 1):
            raise UserError(f"data.image_size={image_size} does not fit StackGAN: Stage-II draws data.image_size and "
                            "Stage-I a quarter of it, which must be a power of two of at least 8 px (data.image_size="
                            "32 -> 8, 64 -> 16, 256 -> 64 as in the paper). Set data.image_size=32 or 64 (or 128, 256).")
        self.optimizer = optimizer
        self.g_lr, self.d_lr = g_lr or lr, d_lr or lr
        self.stage1_ckpt, self.stage1_epochs, self.kl_weight = stage1_ckpt, stage1_epochs, kl_weight
        self.save_hyperparameters(ignore=["loss", "optimizer", "stage1_generator", "stage1_discriminator",
                                          "stage2_generator", "stage2_discriminator"])
        self.num_classes, self.image_size = num_classes, image_size
        self.low_size = image_size // 4
        nets = dict(text_dim=text_dim, channels=channels)
        self.stage1_generator = build(stage1_generator, image_size=self.low_size, **nets)
        self.latent_dim: int = self.stage1_generator.latent_dim
        if self.stage in ("1", "both"):
            self.stage1_discriminator = build(stage1_discriminator, image_size=self.low_size, **nets)
        if self.stage in ("2", "both"):
            self.stage2_generator = build(stage2_generator, image_size=image_size, **nets)
            self.stage2_discriminator = build(stage2_discriminator, image_size=image_size, **nets)
        self.init_text_conditioning(text_dim, self.latent_dim, BANK_SIZE, FIGURE_ROWS, SAMPLES_PER_CAPTION)

    # --- which stage trains now --------------------------------------------------------------------
    def phase(self) -> int:
        """The stage being trained: 1 or 2 (with stage=both, 2 from epoch `stage1_epochs` on)."""
        if self.stage == "both":
            return 1 if self.current_epoch < self.stage1_epochs else 2
        return int(self.stage)

    def output_stage(self) -> int:
        """The stage whose images `sample` returns: Stage-II unless only Stage-I exists."""
        return 1 if self.stage == "1" else 2

    def stages(self) -> list[int]:
        """The stages this run trains."""
        return {"1": [1], "2": [2], "both": [1, 2]}[self.stage]

    def generators(self) -> list[nn.Module]:
        return [getattr(self, f"stage{k}_generator") for k in self.stages()]

    def discriminators(self) -> list[nn.Module]:
        return [getattr(self, f"stage{k}_discriminator") for k in self.stages()]

    # --- drawing images ----------------------------------------------------------------------------
    def draw(self, z: Tensor, text: Tensor, phase: int, grad: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(Stage-I image, the phase's image, mu, logvar) of the phase's generator. In phase 2 the frozen Stage-I
        runs in eval mode without gradients (its batch-norm statistics stay as trained)."""
        if phase == 1:
            with torch.set_grad_enabled(grad):
                low, mu, logvar = self.stage1_generator(z, text)
            return low, low, mu, logvar
        low = self.frozen(self.stage1_generator, z, text)[0]
        with torch.set_grad_enabled(grad):
            image, mu, logvar = self.stage2_generator(low, text)
        return low, image, mu, logvar

    @staticmethod
    @torch.no_grad()
    def frozen(network: nn.Module, *inputs: Tensor):
        """`network(*inputs)` in eval mode without gradients, its mode restored after."""
        was_training = network.training
        network.eval()
        outputs = network(*inputs)
        network.train(was_training)
        return outputs

    @torch.no_grad()
    def generate(self, z: Tensor, text: Tensor, stage: int | None = None) -> tuple[Tensor, Tensor]:
        """(Stage-I images, the given stage's images) in eval mode, with the sampling networks (tricks=[ema])."""
        stage = stage or self.output_stage()
        low = self.frozen(self.inference_generator(self.stage1_generator), z, text)[0]
        if stage == 1:
            return low, low
        return low, self.frozen(self.inference_generator(self.stage2_generator), low, text)[0]

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, text: Tensor | None = None) -> Tensor:
        """`n` images for the caption embeddings `text` ((n, text_dim), or (1, text_dim) for all): Stage-II's
        (Stage-I's with stage=1). Without text, embeddings of training captions (of images with `labels`, if
        given) are drawn at random."""
        text = self.sampling_text(n, labels, text)
        return self.generate(torch.randn(n, self.latent_dim, device=self.device), text)[1]

    # --- fit start and the logged figure ----------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()  # the data's captions, and the figure's (unless resumed)
        if self.stage == "2" and not self.trainer.ckpt_path:  # resumed: Stage-I comes from the checkpoint
            self.load_stage1(self.stage1_ckpt)

    def load_stage1(self, path: str) -> None:
        """Copy Stage-I's generator from a stackgan stage-1 (or stage=both) checkpoint, with clear errors."""
        from gan_cli.checkpoint import read_checkpoint

        try:
            checkpoint = read_checkpoint(path)
        except UserError as err:
            raise UserError(f"model.stage1_ckpt: {err}") from err
        model = (checkpoint["gan_cli"].get("config") or {}).get("model") or {}
        target = str(model.get("_target_", "?"))
        if not target.endswith(".StackGAN"):
            raise UserError(f"model.stage1_ckpt={path} was written by {target.rsplit('.', 1)[-1]}, not StackGAN: give "
                            "the last.ckpt of a gan-train model=stackgan model.stage=1 run.")
        if str(model.get("stage")) not in ("1", "both"):
            raise UserError(f"model.stage1_ckpt={path} is a StackGAN stage-{model.get('stage')} checkpoint: give the "
                            "last.ckpt of a model.stage=1 (or model.stage=both) run, whose Stage-I Stage-II builds on.")
        prefix = "stage1_generator."
        weights = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        try:
            self.stage1_generator.load_state_dict(weights)
        except RuntimeError as err:
            settings = {k: model.get(k) for k in ("stage1_generator", "text_dim", "channels", "image_size")}
            raise UserError(f"model.stage1_ckpt={path} holds a Stage-I generator of other sizes than this run's. Use "
                            f"the Stage-I run's settings (data, text_encoder and model.stage1_generator.*): it had "
                            f"{settings}.") from err

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """One figure: each row a caption, its Stage-I samples (enlarged) and its Stage-II samples side by side."""
        low, high = self.generate(*self.figure_inputs())
        # caption i's images consecutive: its Stage-I samples enlarged to the output size (nearest), then its
        # Stage-II samples for the same noise
        columns = [F.interpolate(low, size=(self.image_size, self.image_size), mode="nearest")]
        if self.output_stage() == 2:
            columns.append(high)
        rows = torch.cat([c.unflatten(0, (FIGURE_ROWS, SAMPLES_PER_CAPTION)) for c in columns], dim=1).flatten(0, 1)
        captions = self.figure_captions or [f"(caption {i + 1})" for i in range(FIGURE_ROWS)]
        return {"captions": (self.captioned_figure(rows, captions), 1)}

    # --- training ----------------------------------------------------------------------------------
    def kl_term(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """kl_weight * KL(N(mu, Sigma) || N(0, I)) averaged over the condition's dimensions, as in the authors' code
        (both theirs average over the dimensions; their weight is 2.0)."""
        return self.kl_weight * kl_to_standard_normal(mu, logvar) / mu.size(1)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        self.remember(batch["text"], batch.get("label"))
        self.log_step(self.run_update(self.stage_update, batch["image"], batch["text"], batch["wrong_text"]))

    def capture_key(self) -> tuple:
        return (*super().capture_key(), self.phase())  # the stage being trained

    def stage_update(self, real: Tensor, text: Tensor, wrong: Tensor) -> dict[str, Tensor]:
        """The D update of the stage being trained, and every k-th batch its G update (replayed from a CUDA graph
        under engine.capture_step)."""
        phase = self.phase()
        if phase == 1:
            real = F.interpolate(real, size=(self.low_size, self.low_size), mode="area")
        generator = self.stage1_generator if phase == 1 else self.stage2_generator
        discriminator = self.stage1_discriminator if phase == 1 else self.stage2_discriminator
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        z = torch.randn(real.size(0), self.latent_dim, device=self.device)
        # one forward pass serves both updates, as in the authors' trainer
        _, fake, mu, logvar = self.draw(z, text, phase, grad=generator_due)
        terms, real_scores, fake_scores, wrong_scores = matching_discriminator_terms(
            self, discriminator, real, fake.detach(), text, wrong)
        logs = self.update_discriminator(opt_d, terms, real_scores, fake_scores, discriminator)
        logs["train/stage"] = torch.tensor(float(phase))
        if self.logs_this_step:
            logs["train/D_wrong"] = self.loss.score(wrong_scores.detach()).mean()
        if generator_due:
            with self.toggled_optimizer(opt_g):
                adversarial = matching_generator_loss(self, discriminator, fake, real, text)
                kl = self.kl_term(mu, logvar)
                logs |= self.update(opt_g, adversarial + kl, "g_loss", [generator])
                logs["train/kl"] = kl.detach()
            self.generator_updated()
        return logs


def build(factory: Callable[..., nn.Module], **sizes) -> nn.Module:
    """A network from its factory, initialised as the authors' (N(0, 0.02))."""
    try:
        network = factory(**sizes)
    except ValueError as err:
        raise UserError(f"StackGAN's networks do not fit these settings: {err}.") from err
    dcgan_init_(network)  # the reference's weights_init: N(0, 0.02), batch-norm scales N(1, 0.02)
    return network
