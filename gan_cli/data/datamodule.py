"""One DataModule for every image source: converts, resizes and normalises images, and serves batches
as dicts of named fields (`image`, `label`) so that models never depend on tuple positions."""

from __future__ import annotations

from dataclasses import dataclass
import inspect
import warnings
from functools import partial
from typing import Callable, Sequence

import pytorch_lightning as pl
import torch
import torchvision.transforms.v2 as v2
from torch.utils.data import DataLoader, Dataset

from gan_cli.errors import UserError

# The GAN models have no validation step: Lightning then skips the held-out loop, and would say so on every run.
warnings.filterwarnings("ignore", message="You passed in a `val_dataloader` but have no `validation_step`")


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data."""

    channels: int
    image_size: int
    num_classes: int


class _NamedFields(Dataset):
    """(image, label) pairs -> {"image": ..., "label": ...}."""

    def __init__(self, pairs: Dataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image, label = self.pairs[index]
        return {"image": image, "label": label}


class _InMemory(Dataset):
    """A small dataset transformed once and held as tensors (the transforms are deterministic)."""

    def __init__(self, pairs: Dataset) -> None:
        items = [pairs[i] for i in range(len(pairs))]
        self.images = torch.stack([image for image, _ in items])
        self.labels = torch.tensor([label for _, label in items])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}


class ImageDataModule(pl.LightningDataModule):
    """Images of `channels` x `image_size` x `image_size`, normalised with `mean` and `std`.

    `dataset` is a callable (a Hydra `_partial_` node) taking `split` and `transform`, and `root` when
    the data lives in a folder (`data.root=...`).
    """

    def __init__(self, dataset: Callable[..., Dataset], image_size: int, channels: int, num_classes: int = 0,
                 root: str | None = None,
                 batch_size: int = 64, num_workers: int = 0, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.5,), in_memory: bool = False, pin_memory: bool = False,
                 drop_last: bool = True) -> None:
        super().__init__()
        if root is not None and "root" not in inspect.signature(dataset).parameters:
            raise UserError(f"data.root={root} is not used by this dataset; remove it, or pick data=image_folder.")
        self.dataset = dataset if root is None else partial(dataset, root=root)
        self.spec = DataSpec(channels=channels, image_size=image_size, num_classes=num_classes)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mean, self.std = list(mean), list(std)
        self.in_memory, self.pin_memory, self.drop_last = in_memory, pin_memory, drop_last
        self.train_set: Dataset | None = None
        self._test_set: Dataset | None = None

    @property
    def transform(self) -> v2.Compose:
        to_channels = v2.Grayscale(1) if self.spec.channels == 1 else v2.RGB()
        return v2.Compose([
            v2.ToImage(), to_channels,
            v2.Resize(self.spec.image_size, antialias=True), v2.CenterCrop(self.spec.image_size),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std),
        ])

    def build(self, split: str) -> Dataset:
        pairs = self.dataset(split=split, transform=self.transform)
        return _InMemory(pairs) if self.in_memory else _NamedFields(pairs)

    def prepare_data(self) -> None:
        # On rank 0 only: downloads happen here, and a missing dataset fails before training starts.
        self.dataset(split="train", transform=None)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self.build("train")

    @property
    def test_set(self) -> Dataset:
        """The held-out split, built on first use: only models that evaluate (model=classifier) ask for it.
        Sources without splits (data=image_folder) serve all their images again."""
        if self._test_set is None:
            self._test_set = self.build("test")
        return self._test_set

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return batch_loader(self, self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        """The test split, in order and complete (the GAN models have no validation step, so Lightning
        never asks for it when training them)."""
        return batch_loader(self, self.test_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self, self.test_set, train=False)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        return denormalize(images, self.mean, self.std)


def batch_loader(datamodule, dataset: Dataset, train: bool) -> DataLoader:
    """Batches of `dataset` with the datamodule's batch size and workers: for training shuffled and (with
    its `drop_last`) without a ragged last batch, a set smaller than one batch being refused; otherwise
    in order and complete."""
    drop_last = train and datamodule.drop_last
    if drop_last and len(dataset) < datamodule.batch_size:
        raise UserError(
            f"The dataset has {len(dataset)} training images, fewer than one batch (data.batch_size="
            f"{datamodule.batch_size}). Lower data.batch_size or add images."
        )
    return DataLoader(dataset, batch_size=datamodule.batch_size, shuffle=train, drop_last=drop_last,
                      num_workers=datamodule.num_workers, pin_memory=datamodule.pin_memory,
                      persistent_workers=datamodule.num_workers > 0)


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo Normalize(mean, std): back to [0, 1] for viewing and saving."""
    mean_t = torch.as_tensor(list(mean), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(list(std), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)
