"""2-D mixtures served like images: each point is a (2, 1, 1) "image", so the fully connected models
(model=gan) train on them unchanged. Points are divided by `scale` so that they fit the generators' Tanh
range; `points()` turns model outputs back into the plane.

The datamodule also measures and draws samples: `mode_stats` (modes covered, share of high-quality samples)
and `scatter` (real and generated points), used by the ModeCoverage callback and by gan-eval.
"""

from __future__ import annotations

from functools import partial

import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from gan_cli.config.ranges import NonNegativeInt, PositiveInt
from gan_cli.data.datamodule import DataSpec
from gan_cli.data.loading import ResumableLoading, batch_loader
from gan_cli.data.toy2d import Gaussians2D, mode_stats, scatter_image


class _PointItems(Dataset):
    def __init__(self, mixture: Gaussians2D, scale: float) -> None:
        self.images = (mixture.points / scale).view(-1, 2, 1, 1)
        self.labels = mixture.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}


class PointsDataModule(ResumableLoading, pl.LightningDataModule):
    """`layout` (ring8 or grid25) with `size` training points of std `std`, drawn from `seed`."""

    draws_points = True  # SampleGrid leaves these to ModeCoverage

    def __init__(self, layout: str = "ring8", size: int = 10000, std: float = 0.02, scale: float = 2.5, seed: int = 0,
                 batch_size: PositiveInt = 512, num_workers: NonNegativeInt = 0, image_size: PositiveInt = 1,
                 channels: PositiveInt = 2, num_classes: int = 0, drop_last: bool = True,
                 pin_memory: bool | None = None) -> None:
        super().__init__()
        if image_size != 1 or channels != 2:
            raise ValueError("2-D points are (2, 1, 1) images: data.image_size=1, data.channels=2")
        self.layout, self.size, self.point_std, self.scale, self.seed = layout, size, std, scale, seed
        self.batch_size, self.num_workers, self.drop_last, self.pin_memory = batch_size, num_workers, drop_last, pin_memory
        self.train_set: Dataset | None = None
        self._test_set: Dataset | None = None
        self.centers = Gaussians2D(layout, size=1).centers
        self.spec = DataSpec(channels=2, image_size=1, num_classes=0)
        self.dataset = partial(Gaussians2D, layout)

    def build(self, split: str) -> Dataset:
        return _PointItems(Gaussians2D(self.layout, split=split, size=self.size, std=self.point_std, seed=self.seed),
                           self.scale)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self.build("train")

    @property
    def test_set(self) -> Dataset:
        if self._test_set is None:
            self._test_set = self.build("test")
        return self._test_set

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return batch_loader(self, self.train_set, train=True)

    # --- measuring and drawing samples -------------------------------------------------------------
    def points(self, images: Tensor) -> Tensor:
        """Model outputs (N, 2, 1, 1) -> points (N, 2) in the plane of the mixture."""
        return images.detach().float().reshape(len(images), 2).cpu() * self.scale

    def mode_stats(self, images: Tensor) -> dict[str, float]:
        return mode_stats(self.points(images), self.centers, self.point_std)

    def scatter(self, images: Tensor, size: int = 256) -> Tensor:
        """Real test points (grey) and `images` (red), as an RGB image."""
        extent = float(self.centers.abs().max()) * 1.5
        real = self.points(self.test_set.images[:len(images)])
        return scatter_image(real, self.points(images), extent, size)

    def denormalize(self, images: Tensor) -> Tensor:
        return images * self.scale
