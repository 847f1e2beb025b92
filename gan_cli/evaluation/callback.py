"""The Lightning callback that evaluates a model while it trains (switched on by `metrics=...`)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from gan_cli.evaluation.evaluator import Evaluator
from gan_cli.metrics.record import append_record, new_record
from gan_cli.trackers import log_record


class QualityMetrics(pl.Callback):
    """Every `every_n_epochs` epochs and after the last one, computes the evaluator's scores, logs them as
    `metrics/<name>` (TensorBoard, progress bar, sweepers' optimized_metric) and appends them with their
    protocol to `<run>/checkpoints/metrics.json`. `every_n_epochs=0`: after the last epoch only."""

    def __init__(self, evaluator: Evaluator, every_n_epochs: int = 1) -> None:
        self.evaluator, self.every_n_epochs = evaluator, every_n_epochs

    def due(self, trainer: pl.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.should_stop or (trainer.max_epochs is not None and epoch >= trainer.max_epochs)
        return last or bool(self.every_n_epochs and epoch % self.every_n_epochs == 0)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.due(trainer):
            return
        results = self.evaluator.evaluate(pl_module, trainer.datamodule)
        pl_module.log_dict({f"metrics/{name}": value for name, value in results.items()})
        self._record(trainer, results, pl_module.batches_seen)

    @rank_zero_only
    def _record(self, trainer: pl.Trainer, results: dict[str, float], step: int) -> None:
        record = new_record(results, self.evaluator.last_protocol, epoch=trainer.current_epoch, step=step,
                            seed=self.evaluator.seed)
        append_record(Path(trainer.default_root_dir) / "checkpoints" / "metrics.json", record)
        log_record(trainer.loggers, record)
