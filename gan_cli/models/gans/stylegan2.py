"""StyleGAN2: Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (configuration F), with
the training schedule of the authors' StyleGAN2-ADA code, in plain PyTorch (stylegan2_nets, stylegan2_layers).

Each batch, D is updated first and G when `loss.d_steps` says so; the regularisers are lazy (the paper's
Appendix B), each an optimizer step of its own on the minibatches it is due:

- D: the `loss=` objective (non-saturating logistic by default) on real images and G's samples, through
  `discriminator_terms`, so that tricks augment D's inputs and add terms;
- D, every `r1_interval`-th minibatch: R1, (gamma / 2) E||grad_x D(x)||^2 on the real images (seen as the
  tricks' `augment` shows them to D, the gradient taken through it), times the interval;
- G: the objective's G term through `generator_adversarial_loss`, on images drawn with style mixing;
- G, every `pl_interval`-th G minibatch: path length regularisation, pl_weight * (||J_w^T y|| - a)^2 on a batch
  `pl_batch_shrink` times smaller, a being the lengths' moving average (decay `pl_decay`), times the interval;
- after G's steps: w_avg (the mapping's moving average of w, for truncation) and the moving average of G's
  weights, kept by torch's AveragedModel, which draws every sample and grid (and is evaluated).

Adam runs at lr * c with betas ** c, c = interval / (interval + 1), to make up for the regularisation steps.
Every piece of state is a buffer or a module (w_avg, the path length mean, the average and its count) or the
saved D-update count the intervals are counted from, so a resumed run goes on exactly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel

from gan_cli.config.ranges import Decay, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.losses.penalties import r1_penalty
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.models.contract import TruncatingSampler
from gan_cli.models.gans.gan import NoiseToImage
from gan_cli.models.gans.stylegan2_nets import Discriminator, Generator, broadcast
from gan_cli.models.gans.stylegan2_presets import sizing
from gan_cli.models.gans.stylegan2_regularizers import ema_average_fn, lazy_factor, path_lengths, style_mix


class StyleGAN2(AdversarialModule, NoiseToImage, TruncatingSampler):
    """The mapping and synthesis networks (G), the residual discriminator (D) and G's moving average.

    Sizes come from `preset` (stylegan2_presets: `auto` picks by `image_size`), each replaced by its own setting
    when that is not None. `batch_size` (the data's) turns the average's half-life in images into a decay per
    step. Class-conditional with `conditional` (labels needed): the label's embedding joins z in the mapping, and D
    projects its output onto a mapping of the label (as StyleGAN2-ADA).
    """

    def __init__(self, loss: AdversarialLoss, optimizer: Callable[..., Optimizer], image_size: PositiveInt = 32,
                 channels: PositiveInt = 3, num_classes: NonNegativeInt = 0, conditional: bool = False,
                 batch_size: PositiveInt = 32, preset: str = "auto", channel_base: PositiveInt | None = None,
                 channel_max: PositiveInt | None = None, mapping_layers: PositiveInt | None = None,
                 r1_gamma: NonNegativeFloat | None = None, mbstd_group: PositiveInt | None = None,
                 ema_kimg: NonNegativeFloat | None = None, ema_rampup: NonNegativeFloat | None = None,
                 latent_dim: PositiveInt = 512, w_dim: PositiveInt = 512, mapping_lr_mul: PositiveFloat = 0.01,
                 w_avg_beta: Decay = 0.995, lr: PositiveFloat = 0.0025, style_mixing_prob: UnitFloat = 0.9,
                 r1_interval: PositiveInt = 16, pl_weight: NonNegativeFloat = 2.0, pl_interval: PositiveInt = 4,
                 pl_decay: UnitFloat = 0.01, pl_batch_shrink: PositiveInt = 2, num_samples: PositiveInt = 64) -> None:
        super().__init__(loss)
        self.save_hyperparameters(ignore=["loss", "optimizer"])
        if conditional and not num_classes:
            raise UserError("model.conditional=true needs labelled data, and this data has none (data.num_classes=0). "
                            "Use labelled data (data=cifar10, mnist, ...), or data=image_folder with "
                            "data.dataset.labels_from_subfolders=true data.num_classes=N; or leave conditional out.")
        self.sizing = sizing(preset, image_size, channel_base=channel_base, channel_max=channel_max,
                             mapping_layers=mapping_layers, r1_gamma=r1_gamma, mbstd_group=mbstd_group,
                             ema_kimg=ema_kimg, ema_rampup=ema_rampup)
        size = self.sizing
        self.num_classes: int = num_classes if conditional else 0
        self.latent_dim: int = latent_dim
        self.optimizer, self.lr = optimizer, lr
        self.style_mixing_prob, self.r1_interval = style_mixing_prob, r1_interval
        self.pl_weight, self.pl_interval, self.pl_decay = pl_weight, pl_interval, pl_decay
        self.pl_batch_shrink = pl_batch_shrink
        widths = dict(image_size=image_size, channels=channels, channel_base=size.channel_base,
                      channel_max=size.channel_max, num_classes=self.num_classes, mapping_layers=size.mapping_layers)
        self.generator = Generator(latent_dim=latent_dim, w_dim=w_dim, mapping_lr_mul=mapping_lr_mul,
                                   w_avg_beta=w_avg_beta, **widths)
        self.discriminator = Discriminator(mbstd_group=size.mbstd_group, **widths)
        # G's moving average starts as G's copy; `average_generator` steps it without AveragedModel's host reads
        self.generator_ema = AveragedModel(self.generator, use_buffers=False,
                                           multi_avg_fn=ema_average_fn(batch_size, size.ema_kimg, size.ema_rampup))
        self.generator_ema.requires_grad_(False)
        self.register_buffer("pl_mean", torch.zeros(()))  # the path lengths' moving average, a
        self.fix_grid_noise(num_samples, latent_dim)

    # --- networks ------------------------------------------------------------------------------------
    def generators(self) -> list:
        return [self.generator]

    def discriminators(self) -> list:
        return [self.discriminator]

    def networks(self) -> list:
        """What the training step calls (engine.compile): G's two networks apart (style mixing goes between them),
        and D."""
        return [self.generator.mapping, self.generator.synthesis, self.discriminator]

    def on_fit_start(self) -> None:
        """Refuse a trick that rebuilt G's layers after its average was copied (their weights would not match)."""
        names = [name for name, _ in self.generator.named_parameters()]
        if names != [name for name, _ in self.generator_ema.module.named_parameters()]:
            raise UserError("model=stylegan2 keeps a moving average of its generator, copied when the model is built, "
                            "and a trick changed the generator's layers afterwards (tricks.spectral_norm.generator="
                            "true does), so the two no longer match. Normalise the discriminator only "
                            "(tricks.spectral_norm.generator=false), or leave that trick out.")

    def critic(self, labels: Tensor | None) -> Critic:
        return Critic(self.discriminator, lambda network, images: network(images, labels))

    def configure_optimizers(self):
        """Adam for G and D, each corrected for its lazy regulariser (none when its weight is 0)."""
        g_interval = self.pl_interval if self.pl_weight else None
        d_interval = self.r1_interval if self.sizing.r1_gamma else None
        return (self.lazy_optimizer(self.generator.parameters(), g_interval),
                self.lazy_optimizer(self.discriminator.parameters(), d_interval))

    def lazy_optimizer(self, parameters, interval: int | None) -> Optimizer:
        c = lazy_factor(interval)
        betas = getattr(self.optimizer, "keywords", {}).get("betas")
        settings = {} if betas is None else {"betas": [beta**c for beta in betas]}
        return self.optimizer(parameters, lr=self.lr * c, **settings)

    # --- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, z: Tensor, labels: Tensor | None = None, truncation: float | None = None) -> Tensor:
        """Images of G's moving average (eval mode: each layer's fixed noise) for `z`, truncated in W by psi."""
        return self.run_inference(self.generator_ema.module, z, labels, truncation)

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        return {"samples": self.grid_samples()}

    # --- training ------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        real = batch["image"]
        labels = batch["label"] if self.num_classes else None
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        r1_due = bool(self.sizing.r1_gamma) and self.d_updates % self.r1_interval == 0
        g_updates = self.d_updates // self.loss.d_steps  # G updates so far
        pl_due = generator_due and bool(self.pl_weight) and g_updates % self.pl_interval == 0
        logs = self.discriminator_step(real, labels, opt_d)
        if r1_due:
            logs |= self.r1_step(real, labels, opt_d)
        if generator_due:
            logs |= self.generator_step(real, labels, opt_g, pl_due)
        self.log_step(logs)

    def styles(self, n: int, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """w of n fresh z's, and the w's of every layer: with style mixing, for style_mixing_prob of the samples
        the layers from a random crossover on take the w of a second z."""
        w = self.generator.mapping(self.sample_noise(n), labels)
        num_ws = self.generator.num_ws
        if not self.style_mixing_prob:
            return w, broadcast(w, num_ws)
        other = self.generator.mapping(self.sample_noise(n), labels)
        return w, style_mix(w, other, num_ws, self.style_mixing_prob)

    def discriminator_step(self, real: Tensor, labels: Tensor | None, opt_d) -> dict:
        with torch.no_grad():
            fake = self.generator.synthesis(self.styles(real.size(0), labels)[1])
        terms, real_scores, fake_scores = self.discriminator_terms(self.critic(labels), real, fake)
        return self.update_discriminator(opt_d, terms, real_scores, fake_scores, self.discriminator)

    def r1_step(self, real: Tensor, labels: Tensor | None, opt_d) -> dict:
        """Lazy R1: (gamma / 2) * r1_interval * E||grad_x D(augment(x))||^2 on the real images, a step of its own."""
        critic = self.critic(labels)
        penalty = r1_penalty(lambda images: critic(self.augment(images)), real)
        weight = 0.5 * self.sizing.r1_gamma * self.r1_interval
        return self.update(opt_d, {"r1": weight * penalty}, "d_reg", [self.discriminator], lambda: {})

    def generator_step(self, real: Tensor, labels: Tensor | None, opt_g, pl_due: bool) -> dict:
        with self.toggled_optimizer(opt_g):
            w, ws = self.styles(real.size(0), labels)
            fake = self.generator.synthesis(ws)
            g_loss = self.generator_adversarial_loss(self.critic(labels), fake, real)
            logs = self.update(opt_g, g_loss, "g_loss", [self.generator])
            if pl_due:
                logs |= self.path_length_step(real.size(0), labels, opt_g)
        self.generator.mapping.track(w)
        self.generator_updated()
        self.average_generator()
        return logs

    def path_length_step(self, n: int, labels: Tensor | None, opt_g) -> dict:
        """Path length regularisation on n // pl_batch_shrink samples, a step of its own."""
        n = max(1, n // self.pl_batch_shrink)
        # a double backward, which compiled networks (engine.compile) do not have: this pass runs eagerly
        with torch.compiler.set_stance("force_eager"):
            _, ws = self.styles(n, None if labels is None else labels[:n])
            lengths = path_lengths(self.generator.synthesis(ws), ws)
        mean = self.pl_mean.lerp(lengths.mean(), self.pl_decay)  # not detached in the penalty, as the authors'
        self.pl_mean.copy_(mean.detach())
        penalty = (lengths - mean).square().mean() * (self.pl_weight * self.pl_interval)
        return self.update(opt_g, {"path_length": penalty}, "g_reg", [self.generator],
                           lambda: {"train/pl_mean": self.pl_mean.clone()})

    @torch.no_grad()
    def average_generator(self) -> None:
        """One step of G's moving average (its multi_avg_fn), G's buffers (w_avg) copied. AveragedModel's own
        update_parameters would read its count on the host; the average began as G's copy, so nothing is lost."""
        average = self.generator_ema
        average.multi_avg_fn(list(average.module.parameters()), [p.detach() for p in self.generator.parameters()],
                             average.n_averaged)
        for mine, theirs in zip(average.module.buffers(), self.generator.buffers()):
            mine.copy_(theirs)
        average.n_averaged += 1
