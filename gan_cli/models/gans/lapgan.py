"""LAPGAN: Denton et al. 2015, "Deep Generative Image Models using a Laplacian Pyramid of Adversarial Networks".

An image is drawn coarse to fine. Level 0 (the coarsest, the paper's level K) is an ordinary GAN:
I_0 = G_0(z_0). Each finer level k is a conditional GAN that draws the band-pass residual of its level given
the upsampled coarser image l_k = u(I_{k-1}):  I_k = l_k + G_k(z_k, l_k).

Training (the paper's Eq. 2 at every level) uses pairs made from each real batch with the Laplacian pyramid
(gan_cli.nets.pyramid): level 0 sees the coarsest Gaussian level of the real images; level k's D scores the
real residual h_k = I_k - u(I_{k-1}) against G_k(z_k, l_k), both given the same real l_k. All levels are
trained at once: one optimizer steps every generator, one every discriminator, on the sum of the levels'
losses (the levels share no weights, so the sum trains each level on its own loss).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.models.base import grad_norm
from gan_cli.models.contract import ChainSampler
from gan_cli.models.gans.gan import NoiseToImage
from gan_cli.nets.pyramid import gaussian_pyramid, pyramid_sizes, upsample


class LAPGAN(AdversarialModule, NoiseToImage, ChainSampler):
    """A pyramid of GANs: level 0 draws the coarsest image, each finer level the residual that sharpens it.

    Networks are built per level from four factories (partially applied `_target_`s called with `channels`,
    `image_size` and `num_classes`): `coarse_generator(...)(z, labels)`, `coarse_discriminator(...)(x, labels)`,
    `residual_generator(...)(noise, low, labels)` with a `noise_shape`, `residual_discriminator(...)(h, low,
    labels)`. `levels=None` picks the count from `image_size` and `coarsest_size` (32 px, 8: 8 -> 16 -> 32).
    `conditional`: "auto" follows the data (conditional when num_classes > 0), true requires labels, false
    ignores them.
    """

    captures_update = True

    def __init__(self, loss: AdversarialLoss, optimizer: Callable[..., Optimizer],
                 coarse_generator: Callable[..., nn.Module], coarse_discriminator: Callable[..., nn.Module],
                 residual_generator: Callable[..., nn.Module], residual_discriminator: Callable[..., nn.Module],
                 channels: PositiveInt = 3, image_size: PositiveInt = 32, num_classes: int = 0,
                 conditional: bool | str = "auto", levels: int | None = None, coarsest_size: int = 8,
                 lr: PositiveFloat = 2e-4, g_lr: PositiveFloat | None = None, d_lr: PositiveFloat | None = None,
                 num_samples: PositiveInt = 64) -> None:
        super().__init__(loss)
        self.optimizer = optimizer
        self.g_lr, self.d_lr = g_lr or lr, d_lr or lr
        self.save_hyperparameters(ignore=["loss", "optimizer", "coarse_generator", "coarse_discriminator",
                                          "residual_generator", "residual_discriminator"])
        self.num_classes: int = conditional_classes(conditional, num_classes)
        #: the side of each level, coarse to fine
        self.sizes: list[int] = pyramid_sizes(image_size, levels, coarsest_size)
        self.num_levels = len(self.sizes)
        nets = dict(channels=channels, num_classes=self.num_classes)
        self.level_generators = nn.ModuleList(
            [coarse_generator(image_size=self.sizes[0], **nets)]
            + [residual_generator(image_size=size, **nets) for size in self.sizes[1:]])
        self.level_discriminators = nn.ModuleList(
            [coarse_discriminator(image_size=self.sizes[0], **nets)]
            + [residual_discriminator(image_size=size, **nets) for size in self.sizes[1:]])
        self.latent_dim: int = self.level_generators[0].latent_dim
        self.noise_shapes = [(self.latent_dim,)] + [tuple(g.noise_shape) for g in self.level_generators[1:]]
        # Fixed noise for the logged grids; for a conditional model row r of the samples is all label r,
        # and the chain shows one sample of each label.
        per_row = 8
        if self.num_classes:
            self.register_buffer("fixed_labels", torch.arange(self.num_classes).repeat_interleave(per_row))
            num_samples = self.num_classes * per_row
            self.chain_rows = list(range(0, num_samples, per_row))
        else:
            self.chain_rows = list(range(min(per_row, num_samples)))
        self.grid_row = per_row
        for k, shape in enumerate(self.noise_shapes):
            self.register_buffer(f"fixed_noise_level{k}", torch.randn(num_samples, *shape))

    def generators(self) -> list[nn.Module]:
        return list(self.level_generators)

    def discriminators(self) -> list[nn.Module]:
        return list(self.level_discriminators)

    # --- one level -----------------------------------------------------------------------------------
    @staticmethod
    def level_output(level: int, generator: nn.Module, noise: Tensor, low: Tensor | None,
                     labels: Tensor | None) -> Tensor:
        """What G_k draws: the coarsest image at level 0, a residual given the upsampled image above."""
        return generator(noise, labels) if level == 0 else generator(noise, low, labels)

    def critic(self, level: int, low: Tensor | None, labels: Tensor | None) -> Critic:
        """D_k(x | l_k, y): level k's discriminator with the batch's low-pass images and labels."""
        discriminator = self.level_discriminators[level]
        if level == 0:
            return Critic(discriminator, lambda network, images: network(images, labels))
        return Critic(discriminator, lambda network, residuals: network(residuals, low, labels))

    def training_pairs(self, real: Tensor) -> list[tuple[Tensor | None, Tensor]]:
        """(l_k, what level k draws) for each level, coarse to fine: (None, I_0), then (u(I_{k-1}), h_k)."""
        gaussian = gaussian_pyramid(real, self.num_levels)
        pairs: list[tuple[Tensor | None, Tensor]] = [(None, gaussian[0])]
        for coarse, fine in zip(gaussian[:-1], gaussian[1:]):
            low = upsample(coarse, fine.shape[-2:])
            pairs.append((low, fine - low))
        return pairs

    # --- sampling ----------------------------------------------------------------------------------
    def sample_noise(self, n: int) -> list[Tensor]:
        """z_k for every level, coarse to fine: a latent vector at level 0, a noise plane above."""
        return [torch.randn(n, *shape, device=self.device) for shape in self.noise_shapes]

    @torch.no_grad()
    def generate_levels(self, noise: list[Tensor], labels: Tensor | None = None) -> list[Tensor]:
        """Each level's image I_k at its own size, coarse to fine, drawn in eval mode with the networks that
        sample (the moving averages with tricks=[ema])."""
        images: list[Tensor] = []
        for level, (generator, z) in enumerate(zip(self.level_generators, noise)):
            generator = self.inference_generator(generator)
            was_training = generator.training
            generator.eval()
            if level == 0:
                image = self.level_output(0, generator, z, None, labels)
            else:
                low = upsample(images[-1], (self.sizes[level], self.sizes[level]))
                image = low + self.level_output(level, generator, z, low, labels)
            generator.train(was_training)
            images.append(image)
        return images

    @torch.no_grad()
    def generate(self, noise: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The finest image for the given noise of every level (see `sample_noise`)."""
        return self.generate_levels(noise, labels)[-1]

    @torch.no_grad()
    def chain(self, n: int, labels: Tensor | None = None) -> list[Tensor]:
        """The coarse-to-fine sampling chain of `n` samples: each level's image upsampled to the full size;
        the last is the sample itself (what `sample` draws with the same random state)."""
        if self.num_classes and labels is None:
            labels = self.sample_labels(n)
        return self.full_size(self.generate_levels(self.sample_noise(n), labels))

    def full_size(self, images: list[Tensor]) -> list[Tensor]:
        """Each level's image brought to the finest size by repeated u(.), as the finer levels see it."""
        resized = []
        for image in images:
            for size in self.sizes[len(resized) + 1:]:
                image = upsample(image, (size, size))
            resized.append(image)
        return resized

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        noise = [getattr(self, f"fixed_noise_level{k}") for k in range(self.num_levels)]
        levels = self.full_size(self.generate_levels(noise, getattr(self, "fixed_labels", None)))
        chain = torch.stack([image[self.chain_rows] for image in levels], dim=1).flatten(0, 1)
        return {"samples": (levels[-1], self.grid_row), "chain": (chain, self.num_levels)}

    # --- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        labels = batch["label"] if self.num_classes else None
        self.log_step(self.run_update(self.adversarial_update, batch["image"], labels))

    def adversarial_update(self, real: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        """A D update, and every k-th batch a G update (replayed from a CUDA graph under engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        pairs = self.training_pairs(real)
        logs = self.discriminator_step(pairs, labels, opt_d)
        if generator_due:
            logs |= self.generator_step(pairs, labels, opt_g)
        return logs

    def discriminator_step(self, pairs: list[tuple[Tensor | None, Tensor]], labels: Tensor | None, opt_d) -> dict:
        """Every D_k on its real pairs (l_k, h_k) against (l_k, G_k(z_k, l_k)), the losses summed."""
        n = pairs[0][1].size(0)
        with torch.no_grad():
            fakes = [self.level_output(k, generator, z, low, labels) for k, (generator, z, (low, _)) in
                     enumerate(zip(self.level_generators, self.sample_noise(n), pairs))]
        logs: dict[str, Tensor] = {}
        total, real_scores, fake_scores = 0, [], []
        for k, ((low, real), fake) in enumerate(zip(pairs, fakes)):
            terms, real_k, fake_k = self.discriminator_terms(self.critic(k, low, labels), real, fake)
            level_loss = sum(terms.values())
            total = total + level_loss
            if self.logs_this_step:
                logs[f"train/d_loss_level{k}"] = level_loss.detach()
                real_scores.append(self.loss.score(real_k.detach()).mean())
                fake_scores.append(self.loss.score(fake_k.detach()).mean())
                for name, value in terms.items():  # the objective's penalty and the tricks' terms
                    if name not in ("real", "fake"):
                        logs[f"train/d_{name}"] = logs.get(f"train/d_{name}", 0) + value.detach()
        logs |= self.update(opt_d, total, "d_loss", [self.level_discriminators], lambda: {
            "train/D_x": torch.stack(real_scores).mean(),  # mean over levels
            "train/D_G_z": torch.stack(fake_scores).mean(),
            "train/grad_norm_D": grad_norm(self.level_discriminators)})
        self.discriminator_updated(*self.discriminators())
        return logs

    def generator_step(self, pairs: list[tuple[Tensor | None, Tensor]], labels: Tensor | None, opt_g) -> dict:
        """Every G_k on fresh noise given the real l_k (the discriminators frozen), the losses summed."""
        n = pairs[0][1].size(0)
        logs: dict[str, Tensor] = {}
        with self.toggled_optimizer(opt_g):
            total = 0
            for k, (generator, z, (low, real)) in enumerate(zip(self.level_generators, self.sample_noise(n), pairs)):
                fake = self.level_output(k, generator, z, low, labels)
                level_loss = self.generator_adversarial_loss(self.critic(k, low, labels), fake, real)
                total = total + level_loss
                if self.logs_this_step:
                    logs[f"train/g_loss_level{k}"] = level_loss.detach()
            logs |= self.update(opt_g, total, "g_loss", [self.level_generators])
        self.generator_updated()
        return logs


def conditional_classes(conditional: bool | str, num_classes: int) -> int:
    """The number of classes the networks are conditioned on (0: unconditional)."""
    if conditional == "auto":
        return max(num_classes, 0)
    if conditional is False:
        return 0
    if conditional is True:
        if num_classes <= 0:
            raise UserError(
                "model.conditional=true but the data has no labels (data.num_classes=0). Use labelled data "
                "(data=mnist_5k, mnist, fashion_mnist, cifar10), or data=image_folder with "
                "data.dataset.labels_from_subfolders=true data.num_classes=N, or model.conditional=auto."
            )
        return num_classes
    raise UserError(f"model.conditional={conditional!r}: use auto (follow the data's labels), true or false.")
