"""Mode collapse, seen and counted, for 2-D mixtures (data=ring8, data=grid25): the share of generated
points near a mode and how many modes they cover, logged as metrics/modes_covered and metrics/high_quality,
and a scatter plot of real and generated points as an image. Does nothing for image data."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from torchvision.utils import save_image

from gan_cli.models.contract import Sampler
from gan_cli.trackers import log_image


class ModeCoverage(pl.Callback):
    def __init__(self, num_samples: int = 2500, every_n_epochs: int = 1, dirname: str = "samples") -> None:
        self.num_samples, self.every_n_epochs, self.dirname = num_samples, every_n_epochs, dirname

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "mode_stats") or not isinstance(pl_module, Sampler):
            return
        last = trainer.current_epoch + 1 >= (trainer.max_epochs or 0) or trainer.should_stop
        if not last and (not self.every_n_epochs or (trainer.current_epoch + 1) % self.every_n_epochs):
            return
        samples = pl_module.sample(self.num_samples)
        stats = datamodule.mode_stats(samples)
        pl_module.log_dict({f"metrics/{name}": float(value) for name, value in stats.items()})
        if trainer.is_global_zero:
            self._draw(trainer, datamodule.scatter(samples), pl_module.batches_seen)

    def _draw(self, trainer: pl.Trainer, image, step: int) -> None:
        log_image(trainer.loggers, "scatter", image, step, f"epoch{trainer.current_epoch:03d}")
        folder = Path(trainer.default_root_dir) / self.dirname
        folder.mkdir(parents=True, exist_ok=True)
        save_image(image, folder / f"scatter_epoch{trainer.current_epoch:03d}.png")
        save_image(image, folder / "scatter_latest.png")
