"""What the blending functions accept and give back.

Images are float numpy arrays or torch tensors in [0, 1], laid out C x H x W (torchvision's layout; a
plain H x W array is one channel). A mask is H x W or 1 x H x W, bool or numbers that are all 0 or 1.
The solvers work on float64 numpy copies; the result comes back in the container, dtype, device and
layout of `src`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from gan_cli.errors import UserError

Image = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """How to hand a result back: the container, dtype and device of the input, and whether it was H x W."""

    is_tensor: bool
    dtype: Any
    device: Any
    flat: bool


def _as_numpy(value: Image, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise UserError(f"{name} must be a numpy array or a torch tensor, not {type(value).__name__}.")


def read_image(image: Image, name: str) -> tuple[np.ndarray, Layout]:
    """(C x H x W float64 copy, how to give a result back in the same form)."""
    array = _as_numpy(image, name)
    if not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{name} has dtype {array.dtype}; the blending functions take float images in [0, 1] "
                        f"(divide 8-bit images by 255).")
    if array.ndim not in (2, 3):
        raise UserError(f"{name} has shape {tuple(array.shape)}; give one image as C x H x W (or H x W).")
    layout = Layout(isinstance(image, torch.Tensor), image.dtype, getattr(image, "device", None), array.ndim == 2)
    planes = array[None] if layout.flat else array
    return np.array(planes, dtype=np.float64), layout


def give_back(planes: np.ndarray, layout: Layout) -> Image:
    """`planes` (C x H x W float64) in the form the input came in."""
    result = planes[0] if layout.flat else planes
    if layout.is_tensor:
        return torch.from_numpy(np.ascontiguousarray(result)).to(device=layout.device, dtype=layout.dtype)
    return result.astype(layout.dtype, copy=False)


def read_mask(mask: Image, size: tuple[int, int]) -> np.ndarray:
    """The H x W boolean mask (True: the pasted region), checked to be one binary channel of `size`."""
    array = _as_numpy(mask, "mask")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise UserError(f"mask has shape {tuple(array.shape)}; it must be one channel, H x W or 1 x H x W "
                        f"(convert a colour mask to grey and threshold it).")
    if tuple(array.shape) != tuple(size):
        raise UserError(f"mask is {array.shape[0]}x{array.shape[1]} but the images are {size[0]}x{size[1]}; "
                        f"resize the mask to the images' size.")
    if array.dtype == bool:
        return array.copy()
    if not np.isin(array, (0, 1)).all():
        raise UserError("mask must be binary (only 0 and 1, or bool); threshold it first, e.g. mask > 0.5.")
    return array.astype(bool)


def same_size(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    """UserError unless two C x H x W images have the same shape."""
    if first.shape != second.shape:
        raise UserError(f"{names[0]} is {_shape(first)} but {names[1]} is {_shape(second)}; they must have the "
                        f"same channels and size (resize or crop one of them).")


def _shape(planes: np.ndarray) -> str:
    channels, height, width = planes.shape
    return f"{channels} x {height} x {width}"
