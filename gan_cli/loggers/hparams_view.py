"""TensorBoard's HPARAMS view of a run: its settings next to its final metrics, one row per run.

Written once at the end of training, so that the view lists exactly the metrics the run logged. The view
takes the metric values from the run's own scalar curves (their last points), so only their names are
written here. Lightning's `TensorBoardLogger.log_hyperparams(params, metrics)` would also log the values
again as new points at step 0, which is why this writes the hparams summaries itself.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

#: the config sections shown as hyperparameters (paths, callbacks and loggers say nothing about the result)
SECTIONS = ("model", "data", "loss", "trainer", "seed")


@rank_zero_only
def write_hparams_view(trainer: pl.Trainer, cfg: DictConfig) -> None:
    """Add the run's settings and the names of its logged metrics to each TensorBoard log of the run."""
    folders = [logger.log_dir for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    if not folders:
        return
    params = run_hparams(cfg)
    # the metrics sent to the loggers, i.e. the scalar curves (callback_metrics also holds progress-bar values)
    metrics = {name: float(value) for name, value in trainer.logged_metrics.items()
               if name != "epoch" and torch.as_tensor(value).numel() == 1}
    summaries = hparams(params, metrics)  # the experiment, session-start and session-end summaries
    for folder in folders:
        # a new event file in the run's folder: TensorBoard reads all of them as one run
        with SummaryWriter(log_dir=folder) as writer:
            for summary in summaries:
                writer.file_writer.add_summary(summary)


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings as flat `model.lr`-style keys (as typed on the command line), plus its overrides."""
    flat: dict[str, Any] = {}
    for section in SECTIONS:
        if section in cfg:
            value = cfg[section]
            _flatten(OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value,
                     section, flat)
    if HydraConfig.initialized():
        flat["overrides"] = " ".join(HydraConfig.get().overrides.task)
    return flat


def _flatten(value: Any, key: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            _flatten(item, f"{key}.{name}", into)
    elif value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        into[key] = value  # None is left out of the view
    else:
        into[key] = str(value)  # lists and booleans as they read in the config
