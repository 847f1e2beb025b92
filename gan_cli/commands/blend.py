"""gan-blend: paste the masked region of one image into another, seamlessly (GP-GAN, Wu et al. 2017).

With a Blending GAN checkpoint (gan-train model=gpgan), the copy-and-paste composite is blended at the GAN's
size (64 px) and the Gaussian-Poisson equation, solved at each scale of a Laplacian pyramid, joins those
colours with the composite's gradients at full resolution. Without one (ckpt_path=null), plain Poisson
blending (Perez et al. 2003). The solvers are gan_cli.blending's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError

from gan_cli.blending import blend
from gan_cli.errors import UserError

WRITABLE = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_picture(path: str, name: str, mode: str) -> Image.Image:
    """The image file given as `name`= in PIL `mode` ("RGB", "L"), or a UserError saying what is wrong."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{name}={path}: there is no such file. Give the path of an image file.")
    try:
        with Image.open(file) as image:
            return image.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UserError(f"{name}={path} cannot be read as an image ({err}). Give a PNG or JPEG file.") from err


def as_planes(image: Image.Image) -> np.ndarray:
    """A PIL image -> C x H x W floats in [0, 1]."""
    array = np.asarray(image, dtype=np.float64) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_inputs(src: str, dst: str, mask: str, channels: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """src and dst as C x H x W floats in [0, 1], and the H x W boolean mask (white: the region to paste)."""
    mode = "L" if channels == 1 else "RGB"
    source, destination = read_picture(src, "src", mode), read_picture(dst, "dst", mode)
    region = read_picture(mask, "mask", "L")
    for name, image in (("src", source), ("mask", region)):
        if image.size != destination.size:
            raise UserError(f"{name}={Path(src if name == 'src' else mask).name} is {image.size[0]}x{image.size[1]} "
                            f"px but dst={Path(dst).name} is {destination.size[0]}x{destination.size[1]}: src, dst "
                            f"and mask must have the same size (resize or crop {name}).")
    inside = np.asarray(region) > 127
    if not inside.any():
        raise UserError(f"mask={mask} has no white pixels, so there is nothing to paste: the mask must be white "
                        f"(> 127) where src goes into dst and black elsewhere.")
    return as_planes(source), as_planes(destination), inside


def composite(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The copy-and-paste composite: src inside the mask, dst outside."""
    return np.where(mask[None], src, dst)


def blend_images(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, model=None, **settings) -> np.ndarray:
    """GP-GAN's blend with a Blending GAN `model` (its low-resolution blend of the composite as the colours),
    plain Poisson blending without one. `settings` (levels, beta, sigma, form, details) go to the
    Gaussian-Poisson solver."""
    if model is None:
        return blend(src, dst, mask)
    copy_paste = torch.from_numpy(composite(src, dst, mask)).float()
    low_res = model.low_res_blend(copy_paste).double().cpu().numpy()
    return blend(src, dst, mask, low_res, **settings)


def load_blender(ckpt_path: str, device: str):
    """The Blending GAN of a gan-train model=gpgan checkpoint, on `device`, in eval mode."""
    from gan_cli.assembly import load_model  # Lightning loads only when a checkpoint is given
    from gan_cli.models.contract import Blender

    model, _ = load_model(ckpt_path)
    if not isinstance(model, Blender):
        raise UserError(f"ckpt_path={ckpt_path} holds {type(model).__name__}, not a Blending GAN: gan-blend needs a "
                        f"gan-train model=gpgan checkpoint, or ckpt_path=null for plain Poisson blending.")
    return model.to(device)


def save_picture(planes: np.ndarray, output: Path) -> None:
    pixels = np.clip(np.rint(planes * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output, **({"quality": 95} if output.suffix.lower() in (".jpg", ".jpeg") else {}))


def run_blend(cfg: DictConfig) -> Path:
    """gan-blend as the config says; returns the file written."""
    missing = [name for name in ("src", "dst", "mask") if OmegaConf.is_missing(cfg, name)]
    if missing:
        raise UserError(f"gan-blend needs {', '.join(f'{name}=' for name in missing)}: src= the image to paste from, "
                        f"dst= the image to paste into, mask= white where src goes (gan-blend --help).")
    output = Path(cfg.output).expanduser()
    if output.suffix.lower() not in WRITABLE:
        raise UserError(f"output={cfg.output} should name an image file ending in {', '.join(WRITABLE)}.")
    for name in ("src", "dst", "mask"):
        if Path(cfg[name]).expanduser().resolve() == output.resolve():
            raise UserError(f"output= is the {name} image: the blend would overwrite it. Choose another output file.")
    model = load_blender(cfg.ckpt_path, cfg.device) if cfg.ckpt_path else None
    src, dst, mask = read_inputs(cfg.src, cfg.dst, cfg.mask, model.channels if model is not None else 3)
    settings = {"levels": cfg.levels, "beta": cfg.beta, "sigma": cfg.sigma, "form": cfg.form, "details": cfg.details}
    result = blend_images(src, dst, mask, model, **settings)
    save_picture(result, output)
    how = "GP-GAN (Blending GAN + Gaussian-Poisson)" if model is not None else "Poisson blending (no ckpt_path)"
    print(f"Blended {Path(cfg.src).name} into {Path(cfg.dst).name} ({dst.shape[2]}x{dst.shape[1]}) with {how}: "
          f"{output}")
    return output
