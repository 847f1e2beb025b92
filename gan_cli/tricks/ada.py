"""`ada`: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"). Every image the discriminator sees, real or generated, in D's updates and in G's, goes through
the same augmentation pipeline (gan_cli.nets.ada_augment), each transformation applied per sample with
probability p. Since the generated images are augmented as well, and p stays below the point where the
augmentations would leak into the generated images, G still learns the unaugmented distribution.

p adapts to how much D overfits, measured by r_t = E[sign(D(x_real))], the share of real images D scores as
real minus those it scores as fake: every `interval` discriminator updates, p moves by
sign(r_t - target) * (images seen in the interval) / (ada_kimg * 1000), clamped to [0, 1], so it can go from 0
to 1 in `ada_kimg` thousand images. `target: null` keeps p at `initial_p` (the paper's fixed-p comparison).

All of it runs on the device: p, the sums of signs and the counters are buffers (in checkpoints, so a resumed run
goes on with the same p and r_t), updated with tensor arithmetic; nothing is read on the host between log steps.
"""

from __future__ import annotations

from typing import Annotated, Optional

import torch
from annotated_types import Interval
from torch import Tensor

from gan_cli.config.ranges import PositiveFloat, PositiveInt, UnitFloat
from gan_cli.errors import UserError
from gan_cli.nets.ada_augment import AdaAugment
from gan_cli.tricks.base import Trick

#: r_t's target, strictly between 0 (D scores half the real images as real) and 1 (all of them)
OpenUnitFloat = Annotated[float, Interval(gt=0, lt=1)]


class ADA(Trick):
    """`augment`: the transformations (gan_cli.nets.ada_augment.transforms_of: group letters out of 'bgc' or
    names). The real scores are counted between D's terms and D's step; those of critics D's step did not follow
    (the look-ahead copies of tricks=[unrolled], during G's update) are dropped."""

    p: Tensor
    r_t: Tensor
    pending: Tensor
    totals: Tensor
    images: Tensor
    updates: Tensor

    def __init__(self, initial_p: UnitFloat = 0.0, target: Optional[OpenUnitFloat] = 0.6,
                 ada_kimg: PositiveFloat = 500.0, interval: PositiveInt = 4, augment: str = "bgc") -> None:
        super().__init__()
        try:
            self.pipeline = AdaAugment(augment)
        except ValueError as error:
            raise UserError(f"Invalid config value tricks.ada.augment={augment!r}: {error}.") from error
        self.target, self.ada_kimg, self.interval = target, ada_kimg, interval
        self.register_buffer("p", torch.tensor(float(initial_p)))
        self.register_buffer("r_t", torch.tensor(0.0))  # of the last complete interval
        self.register_buffer("pending", torch.zeros(2))  # (sum of signs, number of scores) since D's last step
        self.register_buffer("totals", torch.zeros(2))  # the same, over the interval so far
        self.register_buffer("images", torch.tensor(0.0))  # real images D was updated on in the interval so far
        self.register_buffer("updates", torch.tensor(0, dtype=torch.long))  # D updates so far
        self._batch = 0  # real images per D update, from the latest discriminator pass

    def augment(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[-2:] == (1, 1):  # points (data=ring8) are 1x1 "images"
            raise UserError(f"tricks=[{self.trick_name}] augments images (N, C, H, W) of more than one pixel, but this "
                            f"model's discriminator sees data of shape {tuple(images.shape)}. Remove it from tricks=.")
        return self.pipeline(images, self.p)

    @torch.no_grad()
    def discriminator_terms(self, model, terms, critic, real, fake, real_scores) -> None:
        self.pending[0].add_(real_scores.detach().sign().sum(dtype=torch.float32))
        self.pending[1].add_(real_scores.numel())
        self._batch = real.size(0)

    @torch.no_grad()
    def after_discriminator_step(self, model) -> None:
        self.totals.add_(self.pending)
        self.pending.zero_()
        self.images.add_(self._batch)
        self.updates.add_(1)
        due = self.updates % self.interval == 0
        r_t = self.totals[0] / self.totals[1].clamp_min(1)
        self.r_t.copy_(torch.where(due, r_t, self.r_t))
        if self.target is not None:
            step = torch.sign(r_t - self.target) * self.images / (self.ada_kimg * 1000)
            self.p.copy_(torch.where(due, (self.p + step).clamp(0, 1), self.p))
        self.totals.mul_(~due)  # a new interval starts
        self.images.mul_(~due)

    @torch.no_grad()
    def after_generator_step(self, model) -> None:
        self.pending.zero_()  # scores of critics G's update looked at, not of a D update

    def logs(self, model) -> dict[str, Tensor]:
        return {f"{self.trick_name}_p": self.p.clone(), f"{self.trick_name}_r_t": self.r_t.clone()}

    def extra_repr(self) -> str:
        return f"target={self.target}, ada_kimg={self.ada_kimg}, interval={self.interval}"
