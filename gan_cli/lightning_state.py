"""The one place that uses Lightning's internals that have no public accessor: how many batches a run has
trained, whether this batch is a log step, which epoch the loop is in before it tells the samplers, and a
module's optimizers as Lightning reads them from `configure_optimizers`."""

from __future__ import annotations

import pytorch_lightning as pl


def batches_stepped(trainer: pl.Trainer) -> int:
    """Training batches processed in this run so far (restored on resume): the x-axis of the logged scalars, as
    Lightning counts it for log_every_n_steps."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning writes the logs of the coming (or current) training batch."""
    return trainer._logger_connector.should_update_logs


def epoch_in_progress(trainer: pl.Trainer) -> int:
    """The epoch the fit loop is in or about to start, as it passes it to the samplers' `set_epoch` (also right
    after a resume, before `trainer.current_epoch` has caught up with a checkpoint written at an epoch's end)."""
    return trainer.fit_loop.epoch_progress.current.processed


def configured_optimizers(module: pl.LightningModule) -> tuple[list, list]:
    """(optimizers, learning-rate scheduler configs) of a fresh call of `module.configure_optimizers()`, in
    whichever of its forms it returns them, as the Trainer reads them."""
    from pytorch_lightning.core.optimizer import _init_optimizers_and_lr_schedulers

    return _init_optimizers_and_lr_schedulers(module)
