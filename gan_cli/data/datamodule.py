"""One DataModule for every image source: converts, resizes and normalises images, and serves batches
as dicts of named fields (`image`, `label`) so that models never depend on tuple positions.

With `labels_per_class=N` (semi-supervised learning, model=ssgan) the training split keeps the labels of
N images per class and every other training image is unlabelled (label -1); each training item then also
carries one labelled example (`labelled_image`, `labelled_label`), so that every batch holds a full batch
of labelled examples next to its batch of (mostly unlabelled) images."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import pytorch_lightning as pl
import torch
import torchvision.transforms.v2 as v2
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from gan_cli.config.ranges import NonNegativeInt, PositiveInt
from gan_cli.data.loading import ResumableLoading, batch_loader
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


def dataset_labels(dataset: Dataset) -> Tensor:
    """The integer label of every item of `dataset` (a _NamedFields or _InMemory), read without loading
    the images where the source keeps its labels (`labels`, or torchvision's `targets`)."""
    if isinstance(dataset, _InMemory):
        return dataset.labels.long()
    source = dataset.pairs if isinstance(dataset, _NamedFields) else dataset
    for name in ("labels", "targets"):
        labels = getattr(source, name, None)
        if labels is not None and len(labels) == len(dataset):
            return torch.as_tensor(labels, dtype=torch.long)
    return torch.tensor([int(dataset[i]["label"]) for i in range(len(dataset))], dtype=torch.long)


def labelled_subset(labels: Tensor, num_classes: int, per_class: int, seed: int) -> Tensor:
    """The indices of `per_class` items of each class 0..num_classes-1, drawn at random with `seed` (the
    same data and seed give the same subset), in class order."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):
        rows = torch.nonzero(labels == label).flatten()
        if len(rows) < per_class:
            raise UserError(
                f"data.labels_per_class={per_class} asks for {per_class} labelled images of class {label}, but "
                f"the training split has only {len(rows)} of that class. Lower data.labels_per_class to at most "
                f"{len(rows)}{' (or check data.num_classes)' if not len(rows) else ''}."
            )
        chosen.append(rows[torch.randperm(len(rows), generator=generator)[:per_class]])
    return torch.cat(chosen)


class _PartlyLabelled(Dataset):
    """A training split of which only the items `subset` keep their labels; all others are labelled -1.

    Item i is the split's item i (`image`, `label`) plus the labelled example subset[i % len(subset)]
    (`labelled_image`, `labelled_label`). The pairing is fixed, and the loader's shuffle of i makes each
    batch's labelled examples a random draw; over an epoch every labelled example is served the same
    number of times (within one), so the classes stay balanced.
    """

    def __init__(self, items: Dataset, subset: Tensor) -> None:
        self.items, self.subset = items, subset
        self.keep = torch.zeros(len(items), dtype=torch.bool)
        self.keep[subset] = True

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.items[index])
        if not self.keep[index]:
            item["label"] = torch.tensor(-1) if isinstance(item["label"], Tensor) else -1
        labelled = self.items[int(self.subset[index % len(self.subset)])]
        item["labelled_image"], item["labelled_label"] = labelled["image"], labelled["label"]
        return item


class ImageDataModule(ResumableLoading, pl.LightningDataModule):
    """Images of `channels` x `image_size` x `image_size`, normalised with `mean` and `std`.

    `dataset` is a callable (a Hydra `_partial_` node) taking `split` and `transform`, and `root` when
    the data lives in a folder (`data.root=...`).

    `labels_per_class=N` keeps the labels of N training images per class (chosen once with
    `labelled_seed`) and unlabels the rest; see the module docstring. The test split is untouched.
    """

    def __init__(self, dataset: Callable[..., Dataset], image_size: PositiveInt, channels: PositiveInt,
                 num_classes: int = 0, root: str | None = None, batch_size: PositiveInt = 64,
                 num_workers: NonNegativeInt = 0, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,),
                 in_memory: bool = False, pin_memory: bool | None = None, drop_last: bool = True,
                 labels_per_class: PositiveInt | None = None, labelled_seed: int = 0) -> None:
        super().__init__()
        if labels_per_class is not None:
            if not num_classes:
                raise UserError(
                    f"data.labels_per_class={labels_per_class} keeps some labels, but this data has none "
                    "(data.num_classes=0). Use labelled data (data=mnist_5k, mnist, fashion_mnist, cifar10), or "
                    "data=image_folder with data.dataset.labels_from_subfolders=true data.num_classes=N; or set "
                    "data.labels_per_class=null."
                )
            if labels_per_class < 1:
                raise UserError(f"data.labels_per_class={labels_per_class}: give at least 1 labelled image per "
                                "class, or null to keep every label.")
        if root is not None and "root" not in inspect.signature(dataset).parameters:
            raise UserError(f"data.root={root} is not used by this dataset; remove it, or pick data=image_folder.")
        self.dataset = dataset if root is None else partial(dataset, root=root)
        self.spec = DataSpec(channels=channels, image_size=image_size, num_classes=num_classes)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mean, self.std = list(mean), list(std)
        self.in_memory, self.pin_memory, self.drop_last = in_memory, pin_memory, drop_last
        self.labels_per_class, self.labelled_seed = labels_per_class, labelled_seed
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
            train_set = self.build("train")
            if self.labels_per_class is not None:
                subset = labelled_subset(dataset_labels(train_set), self.spec.num_classes, self.labels_per_class,
                                         self.labelled_seed)
                train_set = _PartlyLabelled(train_set, subset)
            self.train_set = train_set

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
        return batch_loader(self, self.train_set, train=True, in_memory=whole(self.train_set))

    def val_dataloader(self) -> DataLoader:
        """The test split, in order and complete (the GAN models have no validation step, so Lightning
        never asks for it when training them)."""
        return batch_loader(self, self.test_set, train=False, in_memory=whole(self.test_set))

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self, self.test_set, train=False, in_memory=whole(self.test_set))

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        return denormalize(images, self.mean, self.std)


def whole(dataset: Dataset) -> bool:
    """Whether `dataset` is served whole batches at a time: a plain in-memory split (not a subclass with items
    of its own)."""
    return type(dataset) is _InMemory


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo Normalize(mean, std): back to [0, 1] for viewing and saving."""
    mean_t = torch.as_tensor(list(mean), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(list(std), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)
