"""Test-only callbacks, added to a run from the command line with +callbacks.NAME._target_=tests.helpers.X."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


class PoisonWeights(pl.Callback):
    """Simulates a diverging run: at training batch `at_batch` the generator's weights become NaN."""

    def __init__(self, at_batch: int) -> None:
        self.at_batch = at_batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop._batches_that_stepped == self.at_batch:
            with torch.no_grad():
                for param in pl_module.generator.parameters():
                    param.fill_(float("nan"))


class SlowDown(pl.Callback):
    """Makes every batch take at least `seconds`, so a test can kill a run in the middle."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)
