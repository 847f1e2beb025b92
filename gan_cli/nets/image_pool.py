"""History of generated images for the discriminator (Shrivastava et al. 2017), as used by CycleGAN.

Follows util/image_pool.py of junyanz/pytorch-CycleGAN-and-pix2pix, but draws its random numbers from
torch's global (CPU) generator instead of Python's `random`, so that checkpointing torch's RNG state
together with `state_dict()` makes a resumed run draw exactly what an uninterrupted one would.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.config.ranges import NonNegativeInt


class ImagePool:
    """Up to `pool_size` past images; `query` mixes them into the batch the discriminator sees."""

    def __init__(self, pool_size: NonNegativeInt = 50) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0 (got {pool_size})")
        self.pool_size = pool_size
        self.images: list[Tensor] = []  # each (C, H, W), detached

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """Per image: while the pool fills, store and return it; once full, with probability 0.5 return
        a uniformly chosen stored image and store the new one in its place, else return the new one.
        The result is detached (it only trains the discriminator). pool_size 0 returns `images` as is."""
        if self.pool_size == 0:
            return images
        self.images = [stored.to(images.device) for stored in self.images]
        returned = []
        for image in images.detach():
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                returned.append(image)
            elif torch.rand(()).item() < 0.5:
                index = int(torch.randint(self.pool_size, ()).item())
                returned.append(self.images[index])
                self.images[index] = image.clone()
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Tensor]:
        """{"images": (k, C, H, W)}, or an empty tensor when the pool is empty; loadable with weights_only."""
        return {"images": torch.stack(self.images) if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        images = state["images"]
        if len(images) > self.pool_size:
            raise ValueError(f"the saved pool holds {len(images)} images, more than pool_size={self.pool_size}")
        self.images = [image.clone() for image in images]
