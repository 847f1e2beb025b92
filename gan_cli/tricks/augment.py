"""`diffaugment`: Zhao et al. 2020, the same random differentiable augmentation of real and generated images
before every discriminator pass (D's updates and G's), so D cannot tell them apart by the augmentation."""

from __future__ import annotations

from torch import Tensor

from gan_cli.nets.trick_layers import DiffAugment
from gan_cli.tricks.base import Trick


class DiffAugmentTrick(Trick):
    def __init__(self, policy: str = "color,translation,cutout") -> None:
        super().__init__()
        self.augmentation = DiffAugment(policy)

    def augment(self, images: Tensor) -> Tensor:
        return self.augmentation(images)
