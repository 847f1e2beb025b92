"""The run's last.ckpt: Lightning's ModelCheckpoint (at the end of every epoch, or every N steps), with two things
a resumable run needs. A step checkpoint that falls on an epoch's last batch is written after that epoch has
ended, its end-of-epoch work done (learning-rate schedules, validation, the epoch's hooks): Lightning, resumed from
a checkpoint taken before that work, would count the epoch as done and skip it. And the state the run ends
with is always written, also when the steps do not divide the run."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from gan_cli.lightning_state import at_last_batch


class LastCheckpoint(ModelCheckpoint):
    """ModelCheckpoint, as conf/callbacks/checkpoints.yaml configures it (filename last)."""

    _due_at_epoch_end = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if at_last_batch(trainer):
            self._due_at_epoch_end = (self._every_n_train_steps >= 1
                                      and trainer.global_step % self._every_n_train_steps == 0)
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._due_at_epoch_end:
            self._due_at_epoch_end = False
            self.save_now(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self.save_now(trainer)  # nothing when the last step is saved already

    def save_now(self, trainer: pl.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
