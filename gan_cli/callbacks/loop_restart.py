"""Mends two faults of Lightning's restart (gan_cli.lightning_state): from a checkpoint written after the last
batch of an epoch, so that the resumed run counts and starts its next epoch as an uninterrupted one does; and
of a model that built its training loader before the restore, so that the loader goes on from its saved
position and epoch."""

from __future__ import annotations

import pytorch_lightning as pl

from gan_cli.lightning_state import settle_loader_after_restore, settle_restart_after_last_batch


class LoopRestart(pl.Callback):
    """Installed by gan-train on every run."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        settle_restart_after_last_batch(trainer)
        if trainer.ckpt_path:
            settle_loader_after_restore(trainer)
