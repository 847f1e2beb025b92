"""Putting a model together from its configs: the one place that does it, for training (gan-train) and for
loading a checkpoint (gan-sample, gan-translate, gan-eval, gan-blend)."""

from __future__ import annotations

import os

from hydra.utils import instantiate

from gan_cli.checkpoint import read_checkpoint
from gan_cli.errors import UserError
from gan_cli.models.base import GenerativeModule
from gan_cli.tricks import attach_tricks


def build_model(config) -> GenerativeModule:
    """The model of a run config: its `model` node built, then the `tricks` it names attached."""
    model = instantiate(config["model"])
    attach_tricks(model, config.get("tricks"))
    return model


def load_model(ckpt_path: str | os.PathLike) -> tuple[GenerativeModule, dict]:
    """The model a checkpoint file was written by, rebuilt from the config stored in it, with its weights and in
    eval mode; and that run config."""
    return model_from_checkpoint(read_checkpoint(ckpt_path))


def model_from_checkpoint(checkpoint: dict) -> tuple[GenerativeModule, dict]:
    """load_model for a checkpoint already read (gan_cli.checkpoint.read_checkpoint)."""
    config = checkpoint["gan_cli"]["config"]
    model = build_model(config)
    exported = checkpoint["gan_cli"].get("exported")
    if exported is None:
        model.load_state_dict(checkpoint["state_dict"])
    else:  # a gan-export folder: the inference networks only
        missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=False)
        absent = [key for key in missing if not key.startswith(tuple(exported["dropped"]))]
        if absent or unexpected:
            raise UserError(f"{exported['folder']} does not fit its own config ({len(absent)} weights missing, "
                            f"{len(unexpected)} unknown, e.g. {(absent + unexpected)[0]}): export it again.")
    model.on_load_checkpoint(checkpoint)
    model.eval()
    return model, config
