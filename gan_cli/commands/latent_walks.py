"""gan-sample's latent-space tools for models that draw from Gaussian latent vectors (LatentSampler): walks between
fixed latent points (interpolate=K), as a grid or an animated GIF, and truncated latents (truncation=PSI): z drawn
from the truncated normal, or, for a model that truncates in a latent space of its own (TruncatingSampler, e.g.
StyleGAN2's w), z ~ N(0, I) with psi handed to its `generate`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from gan_cli.errors import UserError
from gan_cli.models.contract import LatentSampler, TruncatingSampler
from gan_cli.visuals import to_grid

ANCHORS = 4  # latent points an animation's walks pass through (a closed loop)
FRAME_MS = 80  # how long a GIF frame is shown


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation from rows of `a` to rows of `b` at fractions `t` (shape (..., 1) against (n, d)):
    the path Gaussian latents stay typical on (a straight line passes through points of atypically small norm).
    Nearly parallel endpoints fall back to the straight line."""
    a_unit, b_unit = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_unit * b_unit).sum(-1, keepdim=True).clamp(-1, 1))
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin.clamp_min(1e-8)
    return torch.where(sin > 1e-6, spherical, (1 - t) * a + t * b)


def latents(model: LatentSampler, n: int, truncation: float | None) -> Tensor:
    """`n` latent vectors: N(0, I), or with `truncation` psi every coordinate drawn from the normal truncated to
    [-psi, psi] (BigGAN's truncation trick: psi trades variety for typical images; 0 gives the centre, z = 0).
    A TruncatingSampler gets N(0, I) either way: `generate` truncates in its own latent space."""
    z = torch.empty(n, model.latent_dim, device=model.device)
    if truncation is None:
        return z.normal_()
    if truncation < 0:
        raise UserError(f"truncation={truncation}: give psi >= 0 (e.g. 0.5; 0 draws every sample at z = 0).")
    if isinstance(model, TruncatingSampler):
        return z.normal_()
    if truncation == 0:
        return z.zero_()
    return torch.nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation)


def generate(model: LatentSampler, z: Tensor, labels: Tensor | None, truncation: float | None) -> Tensor:
    """model.generate(z, labels), with psi for a model that truncates in its own latent space."""
    if isinstance(model, TruncatingSampler):
        return model.generate(z, labels, truncation=truncation)
    return model.generate(z, labels)


def walk_points(starts: Tensor, ends: Tensor, steps: int) -> Tensor:
    """(walks * steps, d): each walk from its start to its end in `steps` points, both ends included."""
    t = torch.linspace(0, 1, steps, device=starts.device).view(1, steps, 1)
    return slerp(starts[:, None], ends[:, None], t).flatten(0, 1)


def walk_grid(model: LatentSampler, walks: int, steps: int, labels: Tensor | None,
              truncation: float | None) -> Tensor:
    """Images of `walks` walks of `steps` points each, a walk a row (each walk keeps its row's label)."""
    starts, ends = latents(model, walks, truncation), latents(model, walks, truncation)
    row_labels = None if labels is None else labels.repeat_interleave(steps)
    return generate(model, walk_points(starts, ends, steps), row_labels, truncation)


def walk_frames(model: LatentSampler, walks: int, steps: int, labels: Tensor | None,
                truncation: float | None) -> Tensor:
    """(frames, walks, C, H, W): `walks` walks side by side, each a closed loop through ANCHORS latent points,
    `steps` frames from one point to the next."""
    anchors = latents(model, ANCHORS * walks, truncation).view(ANCHORS, walks, -1)
    legs = [walk_points(anchors[i], anchors[(i + 1) % ANCHORS], steps + 1).view(walks, steps + 1, -1)[:, :-1]
            for i in range(ANCHORS)]  # the last point of a leg is the first of the next
    path = torch.cat(legs, dim=1).transpose(0, 1)  # (frames, walks, d)
    images = [generate(model, points, labels, truncation) for points in path]
    return torch.stack(images)


def save_gif(frames: Tensor, output: Path, nrow: int, mean: Sequence[float], std: Sequence[float]) -> None:
    """An animated GIF, looping, with each frame a grid of the walks."""
    from PIL import Image

    pictures = []
    for frame in frames:
        grid = (to_grid(frame, nrow, mean, std).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        pictures.append(Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid))
    output.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(output, save_all=True, append_images=pictures[1:], duration=FRAME_MS, loop=0)


def grid_width(walks: int) -> int:
    return max(1, math.ceil(math.sqrt(walks)))
