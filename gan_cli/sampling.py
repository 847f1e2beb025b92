"""gan-sample: images from a checkpoint, as one grid or one PNG per sample."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from gan_cli.checkpoint import load_model
from gan_cli.errors import UserError
from gan_cli.models.classifier import Classifier
from gan_cli.models.translation import TranslationModel
from gan_cli.visuals import save_each, to_grid


def sample(cfg: DictConfig) -> Path:
    model, run_config = load_model(cfg.ckpt_path)
    if not hasattr(model, "sample"):
        raise UserError(not_a_sampler(model, cfg.ckpt_path))
    if cfg.get("chain") and not hasattr(model, "chain"):
        raise UserError(f"chain=true needs a model that draws coarse to fine (model=lapgan); this checkpoint holds "
                        f"{type(model).__name__}, which draws its images in one step. Leave chain= out.")
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, verbose=False)
    model.to(cfg.device)
    n = cfg.num_samples
    if n < 1:
        raise UserError(f"num_samples must be at least 1, not {n}.")
    labels, nrow = None, cfg.nrow or 8
    num_classes = getattr(model, "num_classes", 0)
    if cfg.label is not None:
        if not num_classes:
            raise UserError("label= needs a class-conditional model (e.g. model=cgan); this checkpoint has no labels.")
        if not 0 <= cfg.label < num_classes:
            raise UserError(f"label={cfg.label} is out of range: this model knows labels 0 to {num_classes - 1}.")
        labels = torch.full((n,), cfg.label, dtype=torch.long, device=model.device)
    elif num_classes:  # row r is all label r
        per_row = cfg.nrow or max(1, n // num_classes)
        labels = torch.arange(n, device=model.device) // per_row % num_classes
        nrow = per_row
    output = Path(cfg.output).expanduser()
    to_folder = cfg.output.endswith(("/", "\\")) or output.is_dir()
    if cfg.get("chain"):  # one row per sample: its image at each level, coarse to fine
        if to_folder:
            raise UserError(f"chain=true writes one grid (a row per sample): give output=FILE.png, not the folder "
                            f"{cfg.output}.")
        levels = model.chain(n, labels)
        images, nrow = torch.stack(levels, dim=1).flatten(0, 1), len(levels)
    else:
        images = model.sample(n, labels, **sampler_options(model, cfg))
    mean, std = run_config["data"]["mean"], run_config["data"]["std"]
    if to_folder:
        save_each(images, output, mean, std)
        return output
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"output={cfg.output} should end in .png or .jpg (a grid), or in / (one PNG per sample).")
    output.parent.mkdir(parents=True, exist_ok=True)
    save_image(to_grid(images, nrow, mean, std), output)
    return output


def sampler_options(model, cfg: DictConfig) -> dict:
    """Settings only some samplers take: the length of an RBM's Gibbs chains (`gibbs_steps=`)."""
    if cfg.get("gibbs_steps") is None:
        return {}
    if "gibbs_steps" not in inspect.signature(model.sample).parameters:
        raise UserError(f"gibbs_steps= is for models that sample by Gibbs chains (model=rbm, model=dbn); this checkpoint "
                        f"holds {type(model).__name__}, which draws its images in one pass. Leave gibbs_steps= out.")
    if cfg.gibbs_steps < 1:
        raise UserError(f"gibbs_steps={cfg.gibbs_steps}: give the number of Gibbs steps of each chain, 1 or more.")
    return {"gibbs_steps": cfg.gibbs_steps}


def not_a_sampler(model, ckpt_path: str) -> str:
    """Why a checkpoint without a `sample` method draws no images, and what to do with it instead."""
    if isinstance(model, TranslationModel):
        return (f"This checkpoint holds {type(model).__name__}, which translates images rather than drawing them "
                "from noise: use gan-translate ckpt_path=... input=FOLDER output=FOLDER.")
    if isinstance(model, Classifier):
        return (f"This checkpoint holds a classifier (model=classifier), which labels images rather than drawing "
                f"them: it has nothing to sample. Its held-out accuracy is reported by gan-eval ckpt_path={ckpt_path}.")
    reason = getattr(model, "no_samples_reason", None)  # a model's own word on what to do instead
    if reason:
        return f"This checkpoint holds {type(model).__name__}: {reason}"
    return f"This checkpoint holds {type(model).__name__}, which does not draw images from noise."
