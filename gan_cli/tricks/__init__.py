"""`tricks=[...]`: switches any adversarial model accepts, several at once (conf/tricks/). Each is a small
`Trick` using the hook points of AdversarialModule; `attach_tricks` builds them from the config."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_cli.errors import UserError
from gan_cli.tricks.ada import ADA
from gan_cli.tricks.augment import DiffAugmentTrick
from gan_cli.tricks.base import Trick, model_name
from gan_cli.tricks.ema import EMA
from gan_cli.tricks.layers import MinibatchDiscriminationTrick, SpectralNorm, VirtualBatchNormTrick
from gan_cli.tricks.losses import R1, FeatureMatching, HistoricalAveraging, LabelSmoothing
from gan_cli.tricks.unrolled import Unrolled

__all__ = ["ADA", "EMA", "R1", "DiffAugmentTrick", "FeatureMatching", "HistoricalAveraging", "LabelSmoothing",
           "MinibatchDiscriminationTrick", "SpectralNorm", "Trick", "Unrolled", "VirtualBatchNormTrick",
           "attach_tricks"]


def attach_tricks(model: nn.Module, tricks: DictConfig | dict | None) -> None:
    """Build the tricks of the `tricks` config node (name -> _target_ node) and set them up on `model`."""
    if not tricks:
        return
    from gan_cli.models.adversarial import AdversarialModule

    names = ", ".join(tricks)
    if not isinstance(model, AdversarialModule):
        raise UserError(f"{model_name(model)} is not adversarial, and tricks=[{names}] change how a generator and a "
                        "discriminator train. Remove tricks=, or pick a GAN model.")
    if not isinstance(tricks, DictConfig):
        tricks = OmegaConf.create(tricks)
    built: list[Trick] = []
    for name, node in tricks.items():
        trick = instantiate(node)
        if not isinstance(trick, Trick):
            raise UserError(f"tricks.{name} builds a {type(trick).__name__}, not a gan_cli.tricks.Trick.")
        trick.trick_name = name
        built.append(trick)
    for trick in sorted(built, key=lambda t: t.order):  # structural changes first, copies (EMA) last
        trick.setup(model)
    for trick in built:  # hooks run in the order the user listed the tricks
        model.tricks[trick.trick_name] = trick
