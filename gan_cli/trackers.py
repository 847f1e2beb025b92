"""What Lightning's logger API does not carry to every tracker: images (sample grids, scatter plots) and the
evaluation records (scores with their protocol). TensorBoard gets an image summary, Weights & Biases an image and
the record in its run summary, MLflow a PNG and a JSON artifact; the CSV logger neither (the run folder has the
PNGs and checkpoints/metrics.json)."""

from __future__ import annotations

from pytorch_lightning.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from torch import Tensor


def log_image(loggers: list[Logger], name: str, grid: Tensor, step: int, tag: str) -> None:
    """A [0, 1] CHW image as `images/<name>` at `step`; `tag` (e.g. epoch003) names MLflow's file."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"images/{name}", grid, step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=f"images/{name}", images=[hwc(grid)], step=step)
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_image(logger.run_id, hwc(grid), f"images/{name}_{tag}.png")


def log_record(loggers: list[Logger], record: dict) -> None:
    """An evaluation record (scores, protocol, epoch) where each tracker keeps documents."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary["evaluation"] = record
        elif isinstance(logger, MLFlowLogger):
            name = f"evaluation/record_epoch{record.get('epoch', 0):03d}.json"
            logger.experiment.log_dict(logger.run_id, record, name)


def finish(loggers: list[Logger]) -> None:
    """End the W&B run when training ends (Lightning leaves it open until the process exits): the jobs of a sweep
    run one after another in one process, each in its own W&B run."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


def hwc(grid: Tensor):
    """A CHW image in [0, 1] as an HWC uint8 array (what W&B and MLflow take)."""
    array = (grid.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array
