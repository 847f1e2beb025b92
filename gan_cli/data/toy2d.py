"""2-D mixtures of Gaussians for seeing mode collapse (Metz et al. 2017, "Unrolled GANs"; VEEGAN's counts).

- `ring8`: 8 Gaussians on a circle of radius 2, std 0.02;
- `grid25`: 25 Gaussians on a 5 x 5 grid with spacing 2 (from -4 to 4), std 0.02 (VEEGAN uses 0.05).

`mode_stats` gives the numbers people report: a sample is "high quality" when it lies within 3 standard
deviations of its nearest mode, and a mode is "covered" when it is the nearest mode of at least one high
quality sample (Srivastava et al. 2017). `scatter_image` draws real and generated points into an image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset

from gan_cli.errors import UserError

LAYOUTS = ("ring8", "grid25")


def mode_centers(layout: str, radius: float = 2.0, spacing: float = 2.0) -> Tensor:
    """The means of the mixture, (K, 2)."""
    if layout == "ring8":
        angles = torch.arange(8) * (2 * math.pi / 8)
        return radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    if layout == "grid25":
        axis = (torch.arange(5) - 2) * spacing
        return torch.cartesian_prod(axis, axis)
    raise UserError(f"Unknown 2-D layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")


class Gaussians2D(Dataset):
    """`size` points of a 2-D mixture (equal weights) drawn once from `seed`, with the index of their mode
    as the label. The test split uses another seed."""

    def __init__(self, layout: str = "ring8", split: str = "train", transform=None, size: int = 10000,
                 std: float = 0.02, seed: int = 0) -> None:
        self.centers, self.std = mode_centers(layout), std
        generator = torch.Generator().manual_seed(seed + (split != "train"))
        self.labels = torch.randint(len(self.centers), (size,), generator=generator)
        self.points = self.centers[self.labels] + std * torch.randn(size, 2, generator=generator)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        point = self.points[index]
        return (self.transform(point) if self.transform else point), int(self.labels[index])


def mode_stats(points: Tensor, centers: Tensor, std: float, min_count: int = 1) -> dict[str, float]:
    """{"modes_covered": how many modes are the nearest mode of >= min_count high-quality samples,
    "high_quality": the share of samples within 3 std of their nearest mode}."""
    distances = torch.cdist(points.float(), centers.float())
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    return {"modes_covered": int((counts >= min_count).sum()), "high_quality": float(good.float().mean())}


def scatter_image(real: Tensor, fake: Tensor, extent: float, size: int = 256) -> Tensor:
    """An RGB image (3, size, size) in [0, 1] of the square [-extent, extent]^2: real points grey, generated
    points red (drawn on top); y grows upwards as in a plot."""
    image = torch.zeros(3, size, size)
    for points, colour in ((real, (0.6, 0.6, 0.6)), (fake, (1.0, 0.1, 0.1))):
        pixels = ((points.detach().float().cpu() + extent) / (2 * extent) * (size - 1)).round().long()
        inside = ((pixels >= 0) & (pixels < size)).all(dim=1)
        x, y = pixels[inside, 0], size - 1 - pixels[inside, 1]
        for channel, value in enumerate(colour):
            image[channel, y, x] = value
    return image
