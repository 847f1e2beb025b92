"""Training pairs of GP-GAN's Blending GAN (Wu et al. 2017), as the authors' dataset.py BlendingDataset builds them.

The data is a folder of scenes, one sub-folder per scene, each holding photos of the same view under different
conditions (time of day, weather, season): the layout of the Transient Attributes Database (Laffont et al. 2014,
its aligned images: imageAlignedLD/<webcam>/<image>.jpg, which the authors first cut to a bounding box per
webcam with their crop_aligned_images.py):

    root/
      scene_a/  0001.jpg  0002.jpg  ...      (any depth inside a scene; hidden files are skipped)
      scene_b/  ...

A training pair takes two different images of one scene, the source and the destination, resized the same way
(shorter side to `load_size`) and cut by the same random `image_size` crop; the composite is the destination
with the centre square of side `ratio * image_size` copied from the source (`paste_at=random`: the square
anywhere in the crop), and the target is the clean destination. The scenes are split as the authors do: sorted
by name, the first `test_scenes` fraction is held out (the test split and the logged examples).
"""

from __future__ import annotations

import inspect
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torchvision.transforms.v2 as v2
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from gan_cli.config.ranges import NonNegativeInt, PositiveInt
from gan_cli.data.datamodule import DataSpec, denormalize
from gan_cli.data.loading import ResumableLoading, batch_loader
from gan_cli.data.sources import images_under, open_rgb
from gan_cli.data.translation import MissingSplit, check_channels
from gan_cli.errors import UserError

LAYOUT = ("one sub-folder per scene, each with two or more images of that same view under different conditions "
          "(the Transient Attributes Database's layout)")
PASTE_AT = ("center", "random")


def scene_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """(name, image files) of every scene under `root` with at least two images, sorted by name."""
    if not root.is_dir():
        raise UserError(f"The scene folder {root.resolve()} does not exist. Point data.root at a folder that holds "
                        f"{LAYOUT}.")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))
    scenes = [(folder.name, files) for folder in subfolders if len(files := images_under(folder)) >= 2]
    if not scenes:
        if not subfolders:
            found = ("it holds no scene sub-folders: put the images of each scene in a sub-folder of their own"
                     if any(p.suffix.lower() in IMG_EXTENSIONS for p in root.iterdir()) else "it is empty")
        else:
            found = f"none of its {len(subfolders)} sub-folders holds two images or more ({', '.join(IMG_EXTENSIONS)})"
        raise UserError(f"The scene folder {root.resolve()} has no scene to make training pairs from: {found}. "
                        f"data.root must hold {LAYOUT}.")
    return scenes


class SceneFolders(Dataset):
    """Pairs (source, destination) of different images of one scene, for split "train" or "test".

    `train_pairs` / `test_pairs` pairs are drawn once, with `seed` (the authors draw 150,000 and 256): a scene
    at random, then two different images of it. `transform` takes both images at once and must treat them
    alike (one random crop for the two), as torchvision.transforms.v2 does; an image of another size than its
    destination is first resized to it (the images of a scene show the same view).
    """

    def __init__(self, root: str, split: str = "train", transform: Callable | None = None,
                 train_pairs: int = 150000, test_pairs: int = 256, test_scenes: float = 0.05, seed: int = 0) -> None:
        if split not in ("train", "test"):
            raise UserError(f"SceneFolders split must be train or test, not {split!r}.")
        if not 0 <= test_scenes < 1:
            raise UserError(f"data.dataset.test_scenes={test_scenes}: give the fraction of scenes held out for "
                            f"testing, from 0 to below 1 (the authors' 0.05).")
        pairs = train_pairs if split == "train" else test_pairs
        if pairs < 1:
            raise UserError(f"data.dataset.{split}_pairs={pairs}: draw at least one pair.")
        self.root = Path(root).expanduser()
        scenes = scene_folders(self.root)
        held_out = int(test_scenes * len(scenes))
        chosen = scenes[:held_out] if split == "test" else scenes[held_out:]
        if not chosen:
            raise MissingSplit(
                f"The {split} split has no scenes: {self.root.resolve()} holds {len(scenes)} usable scenes and "
                f"data.dataset.test_scenes={test_scenes} holds out {held_out} of them. "
                + ("Raise test_scenes to hold some out." if split == "test" else "Lower test_scenes.")
            )
        self.scenes = [name for name, _ in chosen]
        self.files = [files for _, files in chosen]
        self.transform = transform
        rng = np.random.default_rng([seed, int(split == "test")])
        counts = np.array([len(files) for files in self.files])
        self.scene_of = rng.integers(len(counts), size=pairs)
        self.source_of = rng.integers(counts[self.scene_of])
        other = rng.integers(counts[self.scene_of] - 1)
        self.destination_of = other + (other >= self.source_of)  # a different image of the same scene

    def __len__(self) -> int:
        return len(self.scene_of)

    def paths(self, index: int) -> tuple[Path, Path]:
        files = self.files[self.scene_of[index]]
        return files[self.source_of[index]], files[self.destination_of[index]]

    def __getitem__(self, index: int) -> dict:
        source_path, destination_path = self.paths(index)
        source, destination = open_rgb(source_path), open_rgb(destination_path)
        if source.size != destination.size:
            source = source.resize(destination.size, Image.Resampling.BICUBIC)
        if self.transform is not None:
            source, destination = self.transform(source, destination)
        return {"source": source, "destination": destination}


def paste_square(size: int, ratio: float, paste_at: str) -> torch.Tensor:
    """A 1 x size x size mask holding a square of side int(ratio * size): at the centre as the authors paste,
    or anywhere (torch's RNG)."""
    side = int(size * ratio)
    if paste_at == "center":
        top = left = size // 2 - side // 2
    else:
        top, left = (int(v) for v in torch.randint(size - side + 1, (2,)))
    mask = torch.zeros(1, size, size)
    mask[:, top:top + side, left:left + side] = 1
    return mask


class _Composites(Dataset):
    """(source, destination) -> the composite (destination with the masked square of the source), the target
    (the destination), the mask and the source."""

    def __init__(self, pairs: Dataset, image_size: PositiveInt, ratio: float, paste_at: str) -> None:
        self.pairs, self.image_size, self.ratio, self.paste_at = pairs, image_size, ratio, paste_at

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        item = self.pairs[index]
        source, destination = item["source"], item["destination"]
        mask = paste_square(self.image_size, self.ratio, self.paste_at)
        return {"composite": torch.where(mask.bool(), source, destination), "target": destination, "mask": mask,
                "source": source}


class BlendingDataModule(ResumableLoading, pl.LightningDataModule):
    """Batches {"composite", "target", "mask", "source"} of `image_size` px images, normalised with mean / std.

    Training pairs get a random `image_size` crop of the images resized to `load_size` (the authors' 64 and 64:
    a random cut along the longer side); test pairs the centre crop. `dataset` is a callable (a Hydra
    `_partial_` node, SceneFolders) taking `split` and `transform`, and `root` when given.
    """

    def __init__(self, dataset: Callable[..., Dataset], root: str | None = None, image_size: PositiveInt = 64,
                 load_size: PositiveInt = 64, ratio: float = 0.5, paste_at: str = "center", channels: PositiveInt = 3,
                 batch_size: PositiveInt = 64, num_workers: NonNegativeInt = 2, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), pin_memory: bool | None = None, drop_last: bool = True) -> None:
        super().__init__()
        if root is not None and "root" not in inspect.signature(dataset).parameters:
            raise UserError(f"data.root={root} is not used by this dataset; remove it, or pick data=blending_folder.")
        if load_size < image_size:
            raise UserError(f"data.load_size={load_size} is smaller than data.image_size={image_size}: images are "
                            f"resized to load_size and then cropped to image_size. Set data.load_size to at least "
                            f"{image_size}.")
        if not 0 < ratio < 1 or int(ratio * image_size) < 1:
            raise UserError(f"data.ratio={ratio}: the pasted square's side as a fraction of data.image_size must be "
                            f"above 0 (at least one pixel) and below 1 (the authors' 0.5).")
        if paste_at not in PASTE_AT:
            raise UserError(f"data.paste_at={paste_at}: choose center (the authors') or random.")
        check_channels(channels, mean, std)
        self.dataset = dataset if root is None else partial(dataset, root=root)
        self.spec = DataSpec(channels=channels, image_size=image_size, num_classes=0)
        self.image_size, self.load_size, self.ratio, self.paste_at = image_size, load_size, ratio, paste_at
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mean, self.std = list(mean), list(std)
        self.pin_memory, self.drop_last = pin_memory, drop_last
        self.train_set: Dataset | None = None

    def transform(self, train: bool) -> v2.Compose:
        """Both images of a pair: to the channels, shorter side to load_size, one crop, normalised."""
        crop = v2.RandomCrop(self.image_size) if train else v2.CenterCrop(self.image_size)
        return v2.Compose([v2.Grayscale(1) if self.spec.channels == 1 else v2.RGB(),
                           v2.Resize(self.load_size, antialias=True), crop, v2.ToImage(),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std), v2.ToPureTensor()])

    def build(self, split: str, train: bool | None = None) -> Dataset:
        """The `split` composites, with the training (random crop) or the evaluation transform (centre crop)."""
        train = split == "train" if train is None else train
        pairs = self.dataset(split=split, transform=self.transform(train))
        return _Composites(pairs, self.image_size, self.ratio, self.paste_at)

    def prepare_data(self) -> None:
        self.dataset(split="train", transform=None)  # a missing or empty folder fails before training starts

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self.build("train")

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return batch_loader(self, self.train_set, train=True)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self, self.build("test"), train=False)

    def examples(self, n: int) -> dict[str, torch.Tensor]:
        """The first n test composites (training scenes when none is held out), centre-cropped, the same every
        call: the fixed inputs of the logged grids."""
        try:
            dataset = self.build("test", train=False)
        except MissingSplit:
            dataset = self.build("train", train=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            items = [dataset[i] for i in range(min(n, len(dataset)))]
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        return denormalize(images, self.mean, self.std)
