"""The tasks of benchmarks/translation_learning.py (and of benchmarks/unit_vs_cyclegan.py, which adds UNIT to
them): the MNIST5k digits made into translation data whose truth is known (digits <-> inverted digits,
outlines -> digits), written as image folders, and the L1 to the truth measured on the held-out split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

SIZE = 32  # 28 px digits padded to 32 px: a size the ResNet (multiple of 4) and the U-Net (power of 2) accept
EDGE_THRESHOLD = 128  # of the 0..255 outer morphological gradient: pixels above it are edge (255), the rest 0
SEED = 42
GRID_COLUMNS = 10  # one test digit of each class in the grid PNGs
GRID_SCALE = 2  # pixels per image pixel in the grid PNGs


@dataclass
class Direction:
    name: str  # the direction `translate` takes: AtoB or BtoA
    label: str  # what it does, for the table
    source: str  # the key of the input in a test pair {"A": ..., "B": ...}
    truth: str  # the key of the true translation


@dataclass
class Task:
    name: str
    data: str  # the data= option
    layout: str  # "unpaired" or "paired": how write_dataset lays out the image folders
    settings: list[str]  # the scaled-down network, batch and schedule settings
    directions: list[Direction]


# --- data ------------------------------------------------------------------------------------------
def load_digits(split: str, count: int | None) -> torch.Tensor:
    """`count` MNIST5k digits of `split` (all if None; a seeded random subset otherwise) as uint8 (N, 1, 32, 32)."""
    from gan_cli.data.sources import MNIST5k

    images = MNIST5k(split=split).images
    if count is not None and count < len(images):
        images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(SEED))[:count]]
    pad = (SIZE - images.shape[-1]) // 2
    return F.pad(images, (pad, pad, pad, pad))


def invert(images: torch.Tensor) -> torch.Tensor:
    return 255 - images


def edges(images: torch.Tensor) -> torch.Tensor:
    """Binary outlines: the outer 3x3 morphological gradient (dilation - image) thresholded at EDGE_THRESHOLD."""
    x = images.float()
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    return ((dilated - x) > EDGE_THRESHOLD).to(torch.uint8) * 255


def save_pngs(folder: Path, images: torch.Tensor) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy(), mode="L").save(folder / f"{i:05d}.png")


def write_dataset(task: Task, root: Path, train: torch.Tensor, test: torch.Tensor) -> dict[str, torch.Tensor]:
    """Write the folders of `task` into root; returns the training targets of each direction (uint8) for the
    mean-target baseline."""
    if task.layout == "unpaired":
        shuffled = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(SEED + 1))]
        train_B = invert(shuffled)  # another order than trainA: no pair is given
        for sub, images in (("trainA", train), ("trainB", train_B), ("testA", test), ("testB", invert(test))):
            save_pngs(root / sub, images)
        return {"AtoB": train_B, "BtoA": train}
    for split, digits in (("train", train), ("test", test)):
        save_pngs(root / split, torch.cat([edges(digits), digits], dim=-1))  # A (edges) | B (digit)
    return {"AtoB": train}


# --- measuring -------------------------------------------------------------------------------------
def test_pairs(datamodule) -> dict[str, torch.Tensor]:
    """The whole test split, normalised by the DataModule's evaluation transform: {"A": (N, 1, H, W), "B": ...}."""
    dataset = datamodule.build("test", train=False)
    items = [dataset[i] for i in range(len(dataset))]
    return {key: torch.stack([item[key] for item in items]) for key in ("A", "B")}


def l1(images: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean absolute difference of two batches in [0, 1] pixel units."""
    return float((images - truth).abs().mean())


@torch.no_grad()
def translations(model, datamodule, pairs: dict, direction: Direction) -> torch.Tensor:
    """model.translate of the test inputs, in [0, 1]; the global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        out = model.translate(pairs[direction.source].to(model.device), direction.name).cpu()
    return datamodule.denormalize(out)


def errors(model, datamodule, pairs: dict, directions: list[Direction]) -> dict[str, float]:
    return {d.name: l1(translations(model, datamodule, pairs, d), datamodule.denormalize(pairs[d.truth]))
            for d in directions}


def make_curve_callback(datamodule, pairs: dict, directions: list[Direction], began: list[float]):
    import pytorch_lightning as pl

    class Curve(pl.Callback):
        """Prints the test L1 of every direction, the losses and the time at the end of every epoch."""

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            errs = errors(pl_module, datamodule, pairs, directions)
            metrics = trainer.callback_metrics
            losses = "  ".join(f"{k} {float(metrics[k]):.3f}" for k in ("g_loss", "d_loss") if k in metrics)
            errs_text = "  ".join(f"L1 {k} {v:.4f}" for k, v in errs.items())
            print(f"    epoch {trainer.current_epoch + 1:>3}/{trainer.max_epochs}  {errs_text}  {losses}  "
                  f"(at {time.perf_counter() - began[0]:.0f} s)", flush=True)

    return Curve()


def save_grid(path: Path, datamodule, pairs: dict, directions: list[Direction], before: dict, after: dict) -> None:
    """Rows per direction: test input, translation before training, after training, truth."""
    from torchvision.utils import save_image

    per_class = len(pairs["A"]) // GRID_COLUMNS
    index = torch.arange(GRID_COLUMNS) * per_class  # the test split is sorted by label: one digit per class
    rows = []
    for d in directions:
        rows += [datamodule.denormalize(pairs[d.source][index]), before[d.name][index], after[d.name][index],
                 datamodule.denormalize(pairs[d.truth][index])]
    grid = F.interpolate(torch.cat(rows), scale_factor=GRID_SCALE, mode="nearest")
    save_image(grid, path, nrow=GRID_COLUMNS, padding=2 * GRID_SCALE, pad_value=0.5)
