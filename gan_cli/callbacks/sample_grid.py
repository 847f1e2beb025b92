"""Shows a model's named images (its `visuals()`) as grids in TensorBoard and as PNG files."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import save_image

from gan_cli.trackers import log_image
from gan_cli.visuals import to_grid


class SampleGrid(pl.Callback):
    """Every `every_n_batches` training batches and at the end of every epoch, draw the model's visuals
    (e.g. samples from fixed noise), log them to TensorBoard and write `<run>/samples/<name>_*.png`."""

    def __init__(self, every_n_batches: int = 500, dirname: str = "samples", save_png: bool = True) -> None:
        self.every_n_batches, self.dirname, self.save_png = every_n_batches, dirname, save_png

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.batches_seen
        if self.every_n_batches and step and step % self.every_n_batches == 0:
            self.show(trainer, pl_module, f"step{step:07d}")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.show(trainer, pl_module, f"epoch{trainer.current_epoch:03d}")

    def show(self, trainer: pl.Trainer, pl_module, tag: str) -> None:
        # Every rank computes the visuals (cheap, and keeps collective layers in step); rank 0 writes.
        if getattr(trainer.datamodule, "draws_points", False):  # 2-D points: ModeCoverage draws them
            return
        visuals = pl_module.visuals()
        if visuals:
            self._write(trainer, visuals, tag, pl_module.batches_seen)  # the x-axis of the logged scalars

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, visuals: dict, tag: str, step: int) -> None:
        mean, std = getattr(trainer.datamodule, "mean", [0.5]), getattr(trainer.datamodule, "std", [0.5])
        for name, (images, nrow) in visuals.items():
            grid = to_grid(images, nrow, mean, std)
            log_image(trainer.loggers, name, grid, step, tag)
            if self.save_png:
                folder = Path(trainer.default_root_dir) / self.dirname
                folder.mkdir(parents=True, exist_ok=True)
                save_image(grid, folder / f"{name}_{tag}.png")
                save_image(grid, folder / f"{name}_latest.png")

