"""`init_from=CKPT`: start a run from another run's weights (fine-tuning, e.g. onto new data), and `freeze_d=N`:
keep the first N layers of each discriminator as they were (FreezeD, Mo et al. 2020, "Freeze the Discriminator:
a Simple Baseline for Fine-Tuning GANs").

Unlike `ckpt_path=` (which resumes a run exactly: its step counters, optimizers, schedules and random state), only
the weights are taken: the new run counts its own steps and epochs from 0, with fresh optimizers. CKPT may be a
gan-train checkpoint, a gan-export folder (its discriminators then start fresh) or `hf://owner/name`.
"""

from __future__ import annotations

import logging

from torch import nn

from gan_cli.checkpoint import read_checkpoint
from gan_cli.errors import UserError
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.base import GenerativeModule

log = logging.getLogger(__name__)
#: the layers freeze_d counts (with the normalisation layers that sit between them)
COUNTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def initialise_from(model: GenerativeModule, ckpt_path: str) -> dict[str, list[str]]:
    """Copy into `model` every weight of the checkpoint's model it has too (same name and shape); returns the
    names loaded, those that start fresh and those of the checkpoint left unused. A weight of the same name but
    another shape is an error (the runs differ in a setting that decides the networks)."""
    checkpoint = read_checkpoint(ckpt_path)
    source_class = ((checkpoint["gan_cli"].get("config") or {}).get("model") or {}).get("_target_", "")
    this_class = f"{type(model).__module__}.{type(model).__name__}"
    if source_class and source_class != this_class:
        raise UserError(f"init_from={ckpt_path} holds another model ({source_class.rsplit('.', 1)[-1]}; this run trains "
                        f"{type(model).__name__}). Point init_from at a checkpoint of the same model (model=...).")
    source, target = checkpoint["state_dict"], model.state_dict()
    mismatched = [f"{key} {tuple(source[key].shape)} there, {tuple(value.shape)} here"
                  for key, value in target.items() if key in source and source[key].shape != value.shape]
    if mismatched:
        raise UserError(
            f"init_from={ckpt_path} does not fit this model: {len(mismatched)} weights differ in shape (e.g. "
            f"{mismatched[0]}). The networks must be built alike: use the same model settings and image size, "
            "channels and number of classes as that run (its .hydra/config.yaml lists them), or leave init_from out.")
    loaded = [key for key in target if key in source]
    if not loaded:
        raise UserError(f"init_from={ckpt_path} shares no weight with this model: it holds another model. Point "
                        "init_from at a checkpoint of the same model (model=...).")
    model.load_state_dict({key: source[key] for key in loaded}, strict=False)
    fresh = [key for key in target if key not in source]
    unused = [key for key in source if key not in target]
    log.info("init_from=%s: %d weights loaded; %d start fresh%s; %d of the checkpoint unused", ckpt_path, len(loaded),
             len(fresh), f" ({', '.join(sorted({key.split('.')[0] for key in fresh}))})" if fresh else "", len(unused))
    return {"loaded": loaded, "fresh": fresh, "unused": unused}


def freeze_first_layers(network: nn.Module, count: int) -> list[str]:
    """Stop training the first `count` convolution/linear/embedding layers of `network` (in the order the network
    defines them) and the normalisation layers among them; returns the names of the frozen modules."""
    frozen, seen = [], 0
    for name, module in network.named_modules() if count else []:
        if _inside(name, frozen):  # e.g. a spectrally normalised layer's parametrization
            continue
        if isinstance(module, COUNTED):
            if seen == count:
                break
            seen += 1
        elif not name or not any(True for _ in module.parameters(recurse=False)):
            continue
        module.requires_grad_(False)
        frozen.append(name)
    if seen < count:
        raise UserError(f"freeze_d={count}: {type(network).__name__} has only {seen} convolution/linear layers. "
                        f"Give freeze_d between 0 and {seen}.")
    return frozen


def _inside(name: str, frozen: list[str]) -> bool:
    return any(name.startswith(f"{outer}.") for outer in frozen)


def fine_tune(model: GenerativeModule, init_from: str | None, freeze_d: int) -> None:
    """Apply the run's init_from= and freeze_d= to a freshly built model."""
    if freeze_d < 0:
        raise UserError(f"freeze_d={freeze_d}: give the number of D's first layers to freeze, 0 or more.")
    if freeze_d and not init_from:
        raise UserError(f"freeze_d={freeze_d} keeps D's first layers as another run trained them, so it needs "
                        "init_from=CKPT (that run's checkpoint). Add init_from=, or leave freeze_d out.")
    if freeze_d and not isinstance(model, AdversarialModule):
        raise UserError(f"freeze_d={freeze_d} freezes a discriminator's layers, and {type(model).__name__} has "
                        "none. Leave freeze_d out.")
    if init_from:
        initialise_from(model, init_from)
    for discriminator in model.discriminators() if freeze_d else []:
        frozen = freeze_first_layers(discriminator, freeze_d)
        log.info("freeze_d=%d: %s frozen in %s", freeze_d, ", ".join(frozen), type(discriminator).__name__)
