"""History of generated images for the discriminator (Shrivastava et al. 2017), as used by CycleGAN.

Follows util/image_pool.py of junyanz/pytorch-CycleGAN-and-pix2pix, but draws its random numbers from
torch's generator of the images' device instead of Python's `random`, so that checkpointing torch's RNG states
together with `state_dict()` makes a resumed run draw exactly what an uninterrupted one would.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.config.ranges import NonNegativeInt


class ImagePool:
    """Up to `pool_size` past images; `query` mixes them into the batch the discriminator sees.

    Once full, the pool's choices are drawn and applied on the images' device (no host read), so a CUDA graph can
    replay them (engine.capture_step); while it fills, `count` (on the host) says how many it holds."""

    def __init__(self, pool_size: NonNegativeInt = 50) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0 (got {pool_size})")
        self.pool_size = pool_size
        self.stored: Tensor | None = None  # (pool_size, C, H, W) once an image came, detached; rows < count hold images
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def query(self, images: Tensor) -> Tensor:
        """Per image: while the pool fills, store and return it; once full, with probability 0.5 return
        a uniformly chosen stored image and store the new one in its place, else return the new one.
        The result is detached (it only trains the discriminator). pool_size 0 returns `images` as is."""
        if self.pool_size == 0:
            return images
        images = images.detach()
        if self.stored is None:
            self.stored = images.new_empty((self.pool_size, *images.shape[1:]))
        self.stored = self.stored.to(images.device)
        returned = []
        for image in images:
            if self.count < self.pool_size:
                self.stored[self.count] = image
                self.count += 1
                returned.append(image)
                continue
            swap = torch.rand((), device=image.device) < 0.5
            index = torch.randint(self.pool_size, (1,), device=image.device)
            past = self.stored.index_select(0, index)[0]
            returned.append(torch.where(swap, past, image))
            self.stored.index_copy_(0, index, torch.where(swap, image, past).unsqueeze(0))
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Tensor]:
        """{"images": (k, C, H, W)}, or an empty tensor when the pool is empty; loadable with weights_only."""
        return {"images": self.stored[:self.count].clone() if self.count else torch.empty(0)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        images = state["images"]
        if len(images) > self.pool_size:
            raise ValueError(f"the saved pool holds {len(images)} images, more than pool_size={self.pool_size}")
        self.count = len(images)
        self.stored = None
        if self.count:
            self.stored = images.new_empty((self.pool_size, *images.shape[1:]))
            self.stored[:self.count] = images
