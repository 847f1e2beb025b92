"""Image-to-image translation data, as in Zhu et al.'s pytorch-CycleGAN-and-pix2pix.

- `UnpairedFolders`: CycleGAN's layout, two folders of unrelated images per split (trainA/, trainB/, ...).
- `PairedFolder`: pix2pix's layout, one folder per split whose images show A and B side by side.
- `TranslationDataModule`: resizes, crops, flips and normalises them into batches {"A": ..., "B": ...};
  models always translate batch["A"] into batch["B"] (`direction=BtoA` swaps the two).

A named dataset (`name=horse2zebra`, `name=facades`, ...) lives in `root/name` and is downloaded there
from `url` on first use when `download` is true; without a name, `root` itself is the dataset folder.
"""

from __future__ import annotations

import inspect
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pytorch_lightning as pl
import torch
import torchvision.transforms.v2 as v2
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from gan_cli.config.ranges import NonNegativeInt, PositiveInt
from gan_cli.data.datamodule import DataSpec, denormalize
from gan_cli.data.download import download_dataset
from gan_cli.data.loading import ResumableLoading, batch_loader
from gan_cli.data.sources import images_under, open_rgb
from gan_cli.errors import UserError

Transform = Callable | None

UNPAIRED_LAYOUT = ("the folders trainA/ and trainB/ with the images of domains A and B (and testA/ and "
                   "testB/ for testing and the logged examples)")
PAIRED_LAYOUT = ("the folder train/ (and val/ or test/) with images that show A in their left half and "
                 "B in their right half")
PREPROCESS = ("resize_and_crop", "crop", "resize", "none")
DIRECTIONS = ("AtoB", "BtoA")


def check_channels(channels: int, mean, std) -> None:
    """UserErrors for a channel count other than 1 or 3, and a mean or std that does not fit it."""
    if channels not in (1, 3):
        raise UserError(f"data.channels={channels}: choose 1 (grayscale) or 3 (RGB).")
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise UserError(f"data.{key} has {len(values)} values for data.channels={channels}; give "
                            f"{channels} values (one per channel).")


class MissingSplit(UserError):
    """The dataset has no folder for the requested split."""


def _dataset_folder(root: str, name: str | None, url: str | None, download: bool,
                    is_complete: Callable[[Path], bool], layout: str) -> Path:
    """`root/name` for a named dataset (downloaded into it when missing and `download`), else `root`."""
    base = Path(root).expanduser()
    folder = base / name if name else base
    if folder.is_dir():
        return folder
    if not name:
        raise UserError(
            f"The dataset folder {folder.resolve()} does not exist. Point data.root at a folder that holds "
            f"{layout}."
        )
    if download and url:
        return download_dataset(name, url, base, is_complete, layout)
    if url:
        how = (f"Set data.dataset.download=true to download it from {url}, or download that archive by hand "
               f"and unpack it into {base.resolve()}")
    else:
        how = "It has no download address (data.dataset.url): put the files there by hand"
    raise UserError(f"The {name} dataset is not in {folder.resolve()}. {how}, so that {folder.resolve()} "
                    f"holds {layout}.")


def _split_images(folder: Path, sub: str, layout: str) -> list[Path]:
    path = folder / sub
    if not path.is_dir():
        raise MissingSplit(f"The dataset folder {folder.resolve()} has no {sub}/ folder. It should hold {layout}.")
    files = images_under(path)
    if not files:
        raise UserError(
            f"The folder {path.resolve()} holds no image files ({', '.join(IMG_EXTENSIONS)}). The dataset "
            f"folder {folder.resolve()} should hold {layout}."
        )
    return files


class UnpairedFolders(Dataset):
    """CycleGAN's unpaired layout: `{split}A/` and `{split}B/` hold unrelated images of the two domains.

    The length is that of the larger domain. Item i holds A image i (cycling through the smaller
    domain); its B image is drawn at random for split "train" (torch's RNG, so it follows the run's
    seed and worker seeding) and is B image i (cycling) for any other split. `transform` is applied to
    A and B separately, so each gets its own random crop and flip.
    """

    def __init__(self, root: str, split: str = "train", transform: Transform = None, name: str | None = None,
                 url: str | None = None, download: bool = False) -> None:
        self.folder = _dataset_folder(root, name, url, download, _is_unpaired, UNPAIRED_LAYOUT)
        self.files_A = _split_images(self.folder, f"{split}A", UNPAIRED_LAYOUT)
        self.files_B = _split_images(self.folder, f"{split}B", UNPAIRED_LAYOUT)
        self.split, self.transform = split, transform
        self.random_B = split == "train"
        self.paired, self.counts = False, {"A": len(self.files_A), "B": len(self.files_B)}

    def __len__(self) -> int:
        return max(len(self.files_A), len(self.files_B))

    def __getitem__(self, index: int) -> dict:
        path_A = self.files_A[index % len(self.files_A)]
        index_B = (int(torch.randint(len(self.files_B), ())) if self.random_B else index % len(self.files_B))
        A, B = open_rgb(path_A), open_rgb(self.files_B[index_B])
        if self.transform is not None:
            A, B = self.transform(A), self.transform(B)
        return {"A": A, "B": B}


def _is_unpaired(folder: Path) -> bool:
    return (folder / "trainA").is_dir() and (folder / "trainB").is_dir()


class PairedFolder(Dataset):
    """pix2pix's paired layout: `train/`, `val/`, `test/` hold images with A on the left, B on the right.

    Each image is cut at half its width into A and B of equal width (an odd last column is dropped).
    Split "test" falls back to `val/` when there is no `test/` folder (edges2shoes, maps, ...).
    `transform` is applied jointly, `transform(A, B) -> (A, B)`, so the same random crop and flip hit
    both halves (torchvision.transforms.v2 draws one set of random parameters per call).
    """

    def __init__(self, root: str, split: str = "train", transform: Transform = None, name: str | None = None,
                 url: str | None = None, download: bool = False) -> None:
        self.folder = _dataset_folder(root, name, url, download, _is_paired, PAIRED_LAYOUT)
        if split == "test" and not (self.folder / "test").is_dir() and (self.folder / "val").is_dir():
            split = "val"
        self.files = _split_images(self.folder, split, PAIRED_LAYOUT)
        self.split, self.transform = split, transform
        self.paired, self.counts = True, {"A": len(self.files), "B": len(self.files)}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        image = open_rgb(path)
        width, height = image.size
        if width < 2:
            raise UserError(
                f"The image file {path} is {width} px wide, too narrow to hold A and B side by side. Each "
                f"image of a paired dataset shows A in its left half and B in its right half; delete or "
                f"replace it."
            )
        half = width // 2
        A, B = image.crop((0, 0, half, height)), image.crop((half, 0, 2 * half, height))
        if self.transform is not None:
            A, B = self.transform(A, B)
        return {"A": A, "B": B}


def _is_paired(folder: Path) -> bool:
    return (folder / "train").is_dir()


class _Direction(Dataset):
    """Swaps A and B of every item for direction BtoA. `paired`: whether item i's A and B belong
    together; `counts`: the distinct images of each domain (the first counts[X] items hold them)."""

    def __init__(self, pairs: Dataset, swap: bool) -> None:
        self.pairs, self.swap = pairs, swap
        self.paired = getattr(pairs, "paired", False)
        counts = getattr(pairs, "counts", {"A": len(pairs), "B": len(pairs)})
        self.counts = {"A": counts["B"], "B": counts["A"]} if swap else counts

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        item = self.pairs[index]
        return {**item, "A": item["B"], "B": item["A"]} if self.swap else item


class TranslationDataModule(ResumableLoading, pl.LightningDataModule):
    """Batches {"A": (B, C, H, W), "B": ...} of `crop_size` px images for CycleGAN and pix2pix.

    `dataset` is a callable (a Hydra `_partial_` node, UnpairedFolders or PairedFolder) taking `split`
    and `transform`, and `root` when given. Training images are preprocessed as in the reference code:
    "resize_and_crop" resizes to load_size x load_size and takes a random crop_size crop, "crop" only
    crops, "resize" resizes to crop_size x crop_size, "none" keeps the size; then a horizontal flip with
    probability 0.5 when `flip`. Evaluation images (test split, examples) are resized to
    crop_size x crop_size, not flipped. With `direction=BtoA` A and B are swapped.
    """

    def __init__(self, dataset: Callable[..., Dataset], root: str | None = None, crop_size: PositiveInt = 256,
                 load_size: PositiveInt = 286, preprocess: str = "resize_and_crop", flip: bool = True,
                 direction: str = "AtoB", channels: PositiveInt = 3, batch_size: PositiveInt = 1,
                 num_workers: NonNegativeInt = 2, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), pin_memory: bool | None = None, drop_last: bool = True) -> None:
        super().__init__()
        if root is not None and "root" not in inspect.signature(dataset).parameters:
            raise UserError(f"data.root={root} is not used by this dataset; remove it, or pick "
                            "data=unpaired_folder or data=paired_folder.")
        if preprocess not in PREPROCESS:
            raise UserError(f"data.preprocess={preprocess} is not known; choose one of {', '.join(PREPROCESS)}.")
        if preprocess == "resize_and_crop" and crop_size > load_size:
            raise UserError(
                f"data.crop_size={crop_size} is larger than data.load_size={load_size}: images are resized to "
                f"load_size and then cropped to crop_size. Set data.load_size to at least {crop_size}."
            )
        if direction not in DIRECTIONS:
            raise UserError(f"data.direction={direction} is not known; choose AtoB or BtoA (which half of "
                            "each pair is the input).")
        check_channels(channels, mean, std)
        self.dataset = dataset if root is None else partial(dataset, root=root)
        self.spec = DataSpec(channels=channels, image_size=crop_size, num_classes=0)
        self.crop_size, self.load_size, self.preprocess, self.flip = crop_size, load_size, preprocess, flip
        self.direction = direction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mean, self.std = list(mean), list(std)
        self.pin_memory, self.drop_last = pin_memory, drop_last
        self.train_set: Dataset | None = None

    # --- transforms ------------------------------------------------------------------------------
    def _resize(self, size: int) -> v2.Resize:
        return v2.Resize((size, size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True)

    def _to_tensor(self) -> list:
        to_channels = v2.Grayscale(1) if self.spec.channels == 1 else v2.RGB()
        return [to_channels, v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std),
                v2.ToPureTensor()]

    @property
    def train_transform(self) -> v2.Compose:
        steps: list = []
        if self.preprocess == "resize_and_crop":
            steps += [self._resize(self.load_size), v2.RandomCrop(self.crop_size)]
        elif self.preprocess == "crop":
            steps.append(v2.RandomCrop(self.crop_size))
        elif self.preprocess == "resize":
            steps.append(self._resize(self.crop_size))
        if self.flip:
            steps.append(v2.RandomHorizontalFlip(0.5))
        return v2.Compose(steps + self._to_tensor())

    @property
    def eval_transform(self) -> v2.Compose:
        return v2.Compose([self._resize(self.crop_size)] + self._to_tensor())

    # --- datasets --------------------------------------------------------------------------------
    def build(self, split: str, train: bool) -> Dataset:
        """The `split` dataset with the training (random crop and flip) or the evaluation transform."""
        pairs = self.dataset(split=split, transform=self.train_transform if train else self.eval_transform)
        return _Direction(pairs, swap=self.direction == "BtoA")

    def prepare_data(self) -> None:
        # On rank 0 only: downloads happen here, and a missing dataset fails before training starts.
        self.dataset(split="train", transform=None)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self.build("train", train=True)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return batch_loader(self, self.train_set, train=True)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self, self.build("test", train=False), train=False)

    def examples(self, n: int) -> dict[str, torch.Tensor]:
        """The first n items of the test split (the train split if there is none), with the evaluation
        transform, as {"A": (n, C, H, W), "B": ...}: the fixed inputs of the logged image grids.

        The same images every call: random choices (an unpaired train split's B) follow a fixed seed,
        without touching the run's random state.
        """
        try:
            dataset = self.build("test", train=False)
        except MissingSplit:
            dataset = self.build("train", train=False)
        count = min(n, len(dataset))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            items = [dataset[i] for i in range(count)]
        return {key: torch.stack([item[key] for item in items]) for key in ("A", "B")}

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        return denormalize(images, self.mean, self.std)
