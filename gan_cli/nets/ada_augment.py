"""The augmentation pipeline of adaptive discriminator augmentation (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data", appendix B), its 'bgc' set:

- b, pixel blitting: x-flip, rotations by multiples of 90 degrees, integer translation (up to 1/8 of the size,
  reflected at the border). Done by gathering pixels, so the result is an exact permutation of the input's;
- g, general geometric: isotropic scaling, pre-rotation, anisotropic scaling, post-rotation, fractional
  translation, composed into one affine matrix per sample and resampled once (bilinear `F.grid_sample`,
  reflection padding; the paper resamples with a wavelet filter at twice the size, which this leaves out);
- c, colour: brightness, contrast, luma flip, hue rotation, saturation.

Each transformation is applied to each sample independently with probability p (the two rotations of the
geometric group with 1 - sqrt(1 - p) each, so that a sample is rotated with probability about p, as in the
paper); a sample no transformation chose is passed through unchanged, bit for bit. Every operation is
differentiable with respect to the images, so the generator's gradient passes through. Images are
(N, C, H, W), normalised like the data with 0 as mid-grey (the [-1, 1] of the data modules): contrast, the luma
flip and saturation act around 0. Luma flip, hue and saturation need RGB: on 1-channel (or any non-3-channel)
images only brightness and contrast of the colour group apply. Rotations by 90 or 270 degrees need square
images: on others the blitting group rotates by 0 or 180 degrees only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the transformations of each group, in the order they are applied (the paper's)
GROUPS: dict[str, tuple[str, ...]] = {
    "b": ("xflip", "rotate90", "xint"),
    "g": ("scale", "rotate", "aniso", "xfrac"),
    "c": ("brightness", "contrast", "lumaflip", "hue", "saturation"),
}
#: the paper's distributions: integer translation U(-0.125, 0.125) of the size; log2 of the (an)isotropic scale
#: N(0, 0.2^2); fractional translation N(0, 0.125^2) of the size; brightness N(0, 0.2^2); log2 of contrast
#: N(0, 0.5^2); log2 of saturation N(0, 1); rotations and hue U(-pi, pi)
XINT_MAX, SCALE_STD, XFRAC_STD, BRIGHTNESS_STD, CONTRAST_STD, SATURATION_STD = 0.125, 0.2, 0.125, 0.2, 0.5, 1.0


def transforms_of(spec: str) -> tuple[str, ...]:
    """The transformations a spec names: comma-separated items, each a transformation's name (`xflip`) or group
    letters (`bgc`, `bg`); raises ValueError naming an unknown item."""
    every = [name for names in GROUPS.values() for name in names]
    chosen: set[str] = set()
    for item in (part.strip() for part in spec.split(",")):
        if item in every:
            chosen.add(item)
        elif item and all(letter in GROUPS for letter in item):
            chosen.update(name for letter in item for name in GROUPS[letter])
        elif item:
            raise ValueError(f"unknown augmentation {item!r}: give group letters out of 'bgc' or names out of "
                             f"{', '.join(every)}, separated by commas")
    return tuple(name for name in every if name in chosen)


def _mirror(index: Tensor, size: int) -> Tensor:
    """Pixel indices reflected into [0, size) without repeating the edge (F.pad's "reflect")."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.remainder(period)
    return torch.where(index >= size, period - index, index)


def _affine(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """Per-sample 3x3 matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (N,) entries."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=1).view(-1, 3, 3)


def _scaling(sx: Tensor, sy: Tensor) -> Tensor:
    zero = torch.zeros_like(sx)
    return _affine(sx, zero, zero, sy, zero, zero)


def _rotation(angle: Tensor) -> Tensor:
    zero, cos, sin = torch.zeros_like(angle), angle.cos(), angle.sin()
    return _affine(cos, -sin, sin, cos, zero, zero)


def _translation(tx: Tensor, ty: Tensor) -> Tensor:
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine(one, zero, zero, one, tx, ty)


class AdaAugment(nn.Module):
    """`forward(images, p)`: the chosen transformations (`transforms_of(transforms)`, the paper's 'bgc' by
    default), each applied per sample with probability `p` (a tensor, so that a p adjusted on the device during
    training is read without a host synchronisation). p = 0 is the identity, p = 1 applies every transformation
    to every sample (with its random parameters: a random x-flip flips half the time, a random rotation by 90
    degrees is 0 a quarter of the time)."""

    def __init__(self, transforms: str = "bgc") -> None:
        super().__init__()
        self.transforms = transforms_of(transforms)

    def forward(self, images: Tensor, p: Tensor | float) -> Tensor:
        if images.dim() != 4:
            raise ValueError(f"the augmentation expects images (N, C, H, W), got shape {tuple(images.shape)}")
        p = torch.as_tensor(p, device=images.device).float()
        if any(name in self.transforms for name in GROUPS["b"]):
            images = self.blit(images, p)
        if any(name in self.transforms for name in GROUPS["g"]):
            images = self.geometric(images, p)
        if any(name in self.transforms for name in GROUPS["c"]):
            images = self.colour(images, p)
        return images

    def chosen(self, name: str, p: Tensor, n: int, device: torch.device) -> Tensor:
        """(N,) booleans: the samples transformation `name` applies to (none when it is not in the set)."""
        if name not in self.transforms:
            return torch.zeros(n, dtype=torch.bool, device=device)
        return torch.rand(n, device=device) < p

    def blit(self, x: Tensor, p: Tensor) -> Tensor:
        """x-flip, k quarter turns and an integer translation, as one gather of pixels. Output pixels are
        addressed in doubled coordinates centred on the image (2j - (W - 1), an integer also for even sizes),
        mapped back through the inverse transformations to the input pixel they read."""
        n, _, h, w = x.shape
        device = x.device
        flip = self.chosen("xflip", p, n, device) & (torch.rand(n, device=device) < 0.5)
        turns = torch.randint(0, 4, (n,), device=device) if h == w else 2 * torch.randint(0, 2, (n,), device=device)
        turns = torch.where(self.chosen("rotate90", p, n, device), turns, 0).view(n, 1, 1)
        shifts = []
        moved = self.chosen("xint", p, n, device)
        for size in (w, h):
            shift = ((torch.rand(n, device=device) * 2 - 1) * XINT_MAX * size).round().long()
            shifts.append(torch.where(moved, shift, 0).view(n, 1, 1))
        u = 2 * torch.arange(w, device=device).view(1, 1, w) - (w - 1) - 2 * shifts[0]  # undo the translation
        v = 2 * torch.arange(h, device=device).view(1, h, 1) - (h - 1) - 2 * shifts[1]
        cos = (turns == 0).long() - (turns == 2).long()  # cos and sin of k quarter turns
        sin = (turns == 1).long() - (turns == 3).long()
        u, v = cos * u + sin * v, cos * v - sin * u  # undo the rotation
        u = torch.where(flip.view(n, 1, 1), -u, u)  # undo the flip
        cols, rows = _mirror((u + w - 1) // 2, w), _mirror((v + h - 1) // 2, h)
        source = (rows * w + cols).view(n, 1, h * w).expand(n, x.size(1), h * w)
        return x.flatten(2).gather(2, source).view_as(x)

    def geometric(self, x: Tensor, p: Tensor) -> Tensor:
        """Isotropic scaling, pre-rotation, anisotropic scaling, post-rotation and fractional translation,
        composed in pixel units about the image centre, then resampled once."""
        n, _, h, w = x.shape
        device = x.device
        p_rotate = 1 - (1 - p).clamp_min(0).sqrt()

        def drawn(name: str, value: Tensor, neutral: float, probability: Tensor = p) -> tuple[Tensor, Tensor]:
            chosen = self.chosen(name, probability, n, device)
            return torch.where(chosen, value, neutral), chosen

        scale, scaled = drawn("scale", torch.exp2(torch.randn(n, device=device) * SCALE_STD), 1.0)
        pre, pre_rotated = drawn("rotate", (torch.rand(n, device=device) * 2 - 1) * math.pi, 0.0, p_rotate)
        aniso, stretched = drawn("aniso", torch.exp2(torch.randn(n, device=device) * SCALE_STD), 1.0)
        post, post_rotated = drawn("rotate", (torch.rand(n, device=device) * 2 - 1) * math.pi, 0.0, p_rotate)
        moved = self.chosen("xfrac", p, n, device)
        tx, ty = (torch.where(moved, torch.randn(n, device=device) * XFRAC_STD * size, 0.0) for size in (w, h))
        # the image's transformation is T R_post A R_pre S; the grid maps each output position back to the input
        inverse = (_scaling(1 / scale, 1 / scale) @ _rotation(-pre) @ _scaling(1 / aniso, aniso)
                   @ _rotation(-post) @ _translation(-tx, -ty))
        to_unit, to_pixels = (_scaling(torch.full((n,), a, device=device), torch.full((n,), b, device=device))
                              for a, b in ((2 / w, 2 / h), (w / 2, h / 2)))  # affine_grid's [-1, 1] coordinates
        theta = (to_unit @ inverse @ to_pixels)[:, :2]
        grid = F.affine_grid(theta, [n, x.size(1), h, w], align_corners=False)
        resampled = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        changed = scaled | pre_rotated | stretched | post_rotated | moved
        return torch.where(changed.view(n, 1, 1, 1), resampled.to(x.dtype), x)

    def colour(self, x: Tensor, p: Tensor) -> Tensor:
        """Brightness, contrast, luma flip, hue rotation about the grey axis and saturation (the last three on RGB
        images only), composed as in the paper into one colour matrix M and offset per sample: M x + offset."""
        n, device = x.size(0), x.device

        def drawn(name: str, value: Tensor, neutral: float) -> tuple[Tensor, Tensor]:
            chosen = self.chosen(name, p, n, device)
            return torch.where(chosen, value, neutral).view(n, 1, 1), chosen

        brightness, brightened = drawn("brightness", torch.randn(n, device=device) * BRIGHTNESS_STD, 0.0)
        contrast, contrasted = drawn("contrast", torch.exp2(torch.randn(n, device=device) * CONTRAST_STD), 1.0)
        changed = brightened | contrasted
        if x.size(1) != 3:
            out = (x + brightness.unsqueeze(1).to(x.dtype)) * contrast.unsqueeze(1).to(x.dtype)
            return torch.where(changed.view(n, 1, 1, 1), out, x)
        flip, flipped = drawn("lumaflip", torch.randint(0, 2, (n,), device=device).float(), 0.0)
        hue, rotated = drawn("hue", (torch.rand(n, device=device) * 2 - 1) * math.pi, 0.0)
        saturation, saturated = drawn("saturation", torch.exp2(torch.randn(n, device=device) * SATURATION_STD), 1.0)
        eye = torch.eye(3, device=device)
        grey = torch.full((3, 3), 1 / 3, device=device)  # v v^T, the projection on the grey axis v = (1, 1, 1)/sqrt(3)
        across = (eye.roll(1, dims=0) - eye.roll(-1, dims=0)) / math.sqrt(3)  # v x (.), the cross product with v
        luma_flip = eye - 2 * flip * grey  # reflects the grey component, keeps the colour
        hue_rotation = hue.cos() * eye + hue.sin() * across + (1 - hue.cos()) * grey  # Rodrigues' formula about v
        saturate = grey + saturation * (eye - grey)
        matrix = saturate @ hue_rotation @ luma_flip * contrast  # after (x + brightness) * contrast
        offset = brightness * contrast * (1 - 2 * flip)  # the grey vector brightness adds, through the matrix
        out = torch.einsum("nij,njhw->nihw", matrix.to(x.dtype), x) + offset.unsqueeze(1).to(x.dtype)
        changed = changed | flipped | rotated | saturated
        return torch.where(changed.view(n, 1, 1, 1), out, x)

    def extra_repr(self) -> str:
        return f"transforms={','.join(self.transforms)!r}"
