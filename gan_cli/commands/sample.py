"""gan-sample: images from a checkpoint, as one grid or one PNG per sample."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor
from torchvision.utils import save_image

from gan_cli.assembly import load_model
from gan_cli.commands import latent_walks as walks
from gan_cli.data.datamodule import denormalize
from gan_cli.errors import UserError
from gan_cli.models.contract import ChainSampler, LabelClassifier, LatentSampler, Sampler, TextSampler, Translator
from gan_cli.visuals import save_each, to_grid

ANIMATIONS = (".gif", ".mp4", ".webm", ".avi", ".mov")


def sample(cfg: DictConfig) -> Path:
    model, run_config = load_model(cfg.ckpt_path)
    if not isinstance(model, Sampler):
        raise UserError(not_a_sampler(model, cfg.ckpt_path))
    if cfg.get("chain") and not isinstance(model, ChainSampler):
        raise UserError(f"chain=true needs a model that draws coarse to fine (model=lapgan); this checkpoint holds "
                        f"{type(model).__name__}, which draws its images in one step. Leave chain= out.")
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, verbose=False)
    model.to(cfg.device)
    n = cfg.num_samples
    if n < 1:
        raise UserError(f"num_samples must be at least 1, not {n}.")
    labels, nrow = None, cfg.nrow or 8
    num_classes = model.num_classes
    output = Path(cfg.output).expanduser()
    to_folder = cfg.output.endswith(("/", "\\")) or output.is_dir()
    captions = requested_captions(model, cfg)
    if captions:
        return sample_captions(model, run_config, captions, cfg, output, to_folder)
    if cfg.label is not None:
        if not num_classes:
            raise UserError("label= needs a class-conditional model (e.g. model=cgan); this checkpoint has no labels.")
        if not 0 <= cfg.label < num_classes:
            raise UserError(f"label={cfg.label} is out of range: this model knows labels 0 to {num_classes - 1}.")
        labels = torch.full((n,), cfg.label, dtype=torch.long, device=model.device)
    elif num_classes and cfg.get("chain"):  # a row per sample (its chain), the labels in turn
        labels = torch.arange(n, device=model.device) % num_classes
    elif num_classes:  # a whole row per label: at least num_samples images, every row full
        nrow = cfg.nrow or math.ceil(n / num_classes)
        n = nrow * num_classes
        labels = torch.arange(num_classes, device=model.device).repeat_interleave(nrow)
    mean, std = run_config["data"]["mean"], run_config["data"]["std"]
    if cfg.get("interpolate") is not None or cfg.get("truncation") is not None:
        return sample_latents(model, cfg, n, labels, nrow, output, to_folder, mean, std)
    if output.suffix.lower() in ANIMATIONS:
        raise UserError(f"output={cfg.output} is an animation: it shows a walk through latent space, so add "
                        "interpolate=K (K images from one latent point to the next).")
    if cfg.get("chain"):  # one row per sample: its image at each level, coarse to fine
        if to_folder:
            raise UserError(f"chain=true writes one grid (a row per sample): give output=FILE.png, not the folder "
                            f"{cfg.output}.")
        levels = model.chain(n, labels)
        images, nrow = torch.stack(levels, dim=1).flatten(0, 1), len(levels)
    else:
        images = model.sample(n, labels, **sampler_options(model, cfg))
    return write_images(images, cfg.output, output, to_folder, mean, std, lambda: to_grid(images, nrow, mean, std))


def sample_latents(model, cfg: DictConfig, n: int, labels: Tensor | None, nrow: int, output: Path, to_folder: bool,
                   mean, std) -> Path:
    """truncation= and interpolate=: images from chosen latent vectors; a walk a row (a grid), or an animated GIF
    of the walks side by side."""
    if not isinstance(model, LatentSampler):
        raise UserError(f"interpolate= and truncation= choose the latent vectors of models that draw from Gaussian "
                        f"noise (model=gan, dcgan, cgan, vae, stylegan2); this checkpoint holds "
                        f"{type(model).__name__}, whose samples come otherwise. Leave them out.")
    if cfg.get("chain"):
        raise UserError("chain=true cannot be combined with interpolate= or truncation=: leave chain= out.")
    if cfg.interpolate is None:
        images = walks.generate(model, walks.latents(model, n, cfg.truncation), labels, cfg.truncation)
        return write_images(images, cfg.output, output, to_folder, mean, std, lambda: to_grid(images, nrow, mean, std))
    steps = cfg.interpolate
    if steps < 2:
        raise UserError(f"interpolate={steps}: give the number of images of each walk, 2 or more (e.g. 8).")
    count = max(1, cfg.num_samples // steps)  # walks: num_samples images in all
    walk_labels = None
    if model.num_classes:
        walk_labels = torch.full((count,), cfg.label, device=model.device) if cfg.label is not None \
            else torch.arange(count, device=model.device) % model.num_classes
    if output.suffix.lower() == ".gif":
        frames = walks.walk_frames(model, count, steps, walk_labels, cfg.truncation)
        walks.save_gif(frames, output, cfg.nrow or walks.grid_width(count), mean, std)
        return output
    if output.suffix.lower() in ANIMATIONS:
        raise UserError(f"output={cfg.output}: animations are written as GIF files; give output=NAME.gif.")
    images = walks.walk_grid(model, count, steps, walk_labels, cfg.truncation)
    return write_images(images, cfg.output, output, to_folder, mean, std, lambda: to_grid(images, steps, mean, std))


def requested_captions(model, cfg: DictConfig) -> list[str]:
    """The captions of text= or text_file= (one a line, blank lines skipped); [] when neither is given."""
    text, text_file = cfg.get("text"), cfg.get("text_file")
    if text is None and text_file is None:
        return []
    if text is not None and text_file is not None:
        raise UserError("Give either text=\"a caption\" or text_file=FILE (one caption a line), not both.")
    if not isinstance(model, TextSampler):
        raise UserError(f"text= and text_file= are for text-to-image models (model=text_cgan, stackgan); this checkpoint "
                        f"holds {type(model).__name__}, which takes no text. Leave them out.")
    if cfg.get("chain"):
        raise UserError("chain=true and text= cannot be combined: leave chain= out.")
    if text is not None:
        if not str(text).strip():
            raise UserError('text= is empty: give a caption, e.g. text="a thick slanted seven".')
        return [str(text).strip()]
    path = Path(text_file).expanduser()
    if not path.is_file():
        raise UserError(f"text_file={text_file} does not exist: give a text file with one caption a line.")
    captions = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not captions:
        raise UserError(f"text_file={text_file} holds no caption: write one caption a line.")
    return captions


def sample_captions(model, run_config: dict, captions: list[str], cfg: DictConfig, output: Path,
                    to_folder: bool) -> Path:
    """num_samples images per caption, encoded with the run's text encoder; a grid has one row per caption,
    the caption written beside it (a folder gets one PNG per image, caption by caption)."""
    from hydra.utils import instantiate

    from gan_cli.models.text_to_image.base import captioned_rows

    if cfg.label is not None:
        raise UserError("label= and text= cannot be combined: the caption says what to draw. Leave label= out.")
    encoder = instantiate(run_config["text_encoder"])
    embeddings = encoder.encode(captions).to(model.device)
    per_caption = cfg.num_samples
    images = torch.cat([model.sample(per_caption, text=embedding[None]) for embedding in embeddings])
    mean, std = run_config["data"]["mean"], run_config["data"]["std"]
    return write_images(images, cfg.output, output, to_folder, mean, std, lambda: captioned_rows(
        denormalize(images.detach().float().cpu(), mean, std).clamp(0, 1), captions))


def write_images(images: Tensor, name: str, output: Path, to_folder: bool, mean, std,
                 grid: Callable[[], Tensor]) -> Path:
    """One PNG per image into the folder `output`, or the figure `grid()` (built only then) as the file `output`
    (`name`: the output= setting, for the message)."""
    if to_folder:
        save_each(images, output, mean, std)
        return output
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"output={name} should end in .png or .jpg (a grid), or in / (one PNG per sample).")
    output.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid(), output)
    return output


def sampler_options(model, cfg: DictConfig) -> dict:
    """Settings only some samplers take: the length of an RBM's Gibbs chains (`gibbs_steps=`)."""
    if cfg.get("gibbs_steps") is None:
        return {}
    if "gibbs_steps" not in model.sample_options:
        raise UserError(f"gibbs_steps= is for models that sample by Gibbs chains (model=rbm, model=dbn); this checkpoint "
                        f"holds {type(model).__name__}, which draws its images in one pass. Leave gibbs_steps= out.")
    if cfg.gibbs_steps < 1:
        raise UserError(f"gibbs_steps={cfg.gibbs_steps}: give the number of Gibbs steps of each chain, 1 or more.")
    return {"gibbs_steps": cfg.gibbs_steps}


def not_a_sampler(model, ckpt_path: str) -> str:
    """Why a checkpoint without a `sample` method draws no images, and what to do with it instead."""
    if isinstance(model, Translator):
        return (f"This checkpoint holds {type(model).__name__}, which translates images rather than drawing them "
                "from noise: use gan-translate ckpt_path=... input=FOLDER output=FOLDER.")
    if model.no_samples_reason:  # a model's own word on what to do instead
        return f"This checkpoint holds {type(model).__name__}: {model.no_samples_reason}"
    if isinstance(model, LabelClassifier):
        return (f"This checkpoint holds a classifier (model=classifier), which labels images rather than drawing "
                f"them: it has nothing to sample. Its held-out accuracy is reported by gan-eval ckpt_path={ckpt_path}.")
    return f"This checkpoint holds {type(model).__name__}, which does not draw images from noise."
