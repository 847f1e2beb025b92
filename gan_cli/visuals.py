"""Turning batches of generated images into grids and PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torchvision.utils import make_grid, save_image

from gan_cli.data.datamodule import denormalize


def to_grid(images: torch.Tensor, nrow: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised images -> one [0, 1] CHW grid with `nrow` images per row."""
    return make_grid(denormalize(images.detach().float().cpu(), mean, std), nrow=nrow, padding=2, pad_value=1.0)


def save_each(images: torch.Tensor, folder: Path, mean: Sequence[float], std: Sequence[float]) -> list[Path]:
    """One PNG per image: folder/000000.png, folder/000001.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(denormalize(images.detach().float().cpu(), mean, std)):
        paths.append(folder / f"{i:06d}.png")
        save_image(image, paths[-1])
    return paths
