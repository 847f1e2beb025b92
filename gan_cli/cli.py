"""The command-line entry points: one small Hydra main per command."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_cli.errors import UserError, user_message
from gan_cli.schemas import register_schemas

register_schemas()


def _fail(error: BaseException) -> None:
    """Show a user's mistake as one paragraph; in a sweep, the other jobs go on."""
    print(f"\ngan-cli error: {user_message(error)}\n", file=sys.stderr, flush=True)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return
    sys.exit(1)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def train_main(cfg: DictConfig) -> float | None:
    """gan-train: train the model that the config describes."""
    from gan_cli.runner import metric_value, train  # heavy imports after Hydra has parsed the command line

    try:
        return metric_value(train(cfg), cfg.get("optimized_metric"))
    except (UserError, InstantiationException) as error:
        _fail(error)
        return float("nan")


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def sample_main(cfg: DictConfig) -> None:
    """gan-sample: draw images from a trained model."""
    from gan_cli.sampling import sample

    try:
        written = sample(cfg)
        print(f"Wrote {written}")
    except (UserError, InstantiationException) as error:
        _fail(error)



@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def translate_main(cfg: DictConfig) -> None:
    """gan-translate: translate a folder of images with a pix2pix or CycleGAN checkpoint."""
    from gan_cli.translating import translate

    try:
        translate(cfg)
    except (UserError, InstantiationException) as error:
        _fail(error)
