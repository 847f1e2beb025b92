"""Lightning's TQDM progress bar, reading the logged values only on log steps: reading a value that lives on a GPU
waits for the GPU to finish everything queued before it, so a bar refreshed every 10 batches would stall the
training loop every 10 batches. Between log steps it shows the values of the last one."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import TQDMProgressBar

from gan_cli.lightning_state import logs_this_step


class LogStepProgressBar(TQDMProgressBar):
    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._shown: dict[str, Any] = {}  # nothing until the first log step
        self._read_now = False  # whether this training batch is a log step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._read_now = logs_this_step(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._read_now:  # the values just logged, whether or not the bar redraws on this batch
            self._shown = super().get_metrics(trainer, pl_module)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._read_now = True  # an epoch's end waits for the GPU anyway (checkpoints, sample grids)
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        if not trainer.training or self._read_now:
            self._shown = super().get_metrics(trainer, pl_module)
        return self._shown
