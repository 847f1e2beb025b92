"""The one place that uses Lightning's internals that have no public accessor: how many batches a run has
trained and how many optimizer steps it made, whether this batch is a log step, which epoch the loop is in before
it tells the samplers, a module's optimizers as Lightning reads them from `configure_optimizers`, and two mends of
the fit loop's restart."""

from __future__ import annotations

import pytorch_lightning as pl


def batches_stepped(trainer: pl.Trainer) -> int:
    """Training batches processed in this run so far (restored on resume): the x-axis of the logged scalars, as
    Lightning counts it for log_every_n_steps."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def optimizer_steps(trainer: pl.Trainer) -> int:
    """Optimizer steps a manually optimising model has made (Lightning's global_step for it)."""
    return trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.total.completed


def count_optimizer_steps(trainer: pl.Trainer, steps: int) -> None:
    """Count `steps` optimizer steps made without Lightning's optimizer wrapper (replayed from a CUDA graph), as
    the wrapper counts each: global_step, max_steps and step-based checkpoints go on from them."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    for _ in range(steps):
        progress.increment_ready()
        progress.increment_completed()


def logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether the coming (or current) training batch logs its values: Lightning's log steps, and the run's last
    batch, so that a run shorter than log_every_n_steps still reports its training curves' final values (to a
    sweep's optimized_metric, for one)."""
    return trainer._logger_connector.should_update_logs or last_batch_of_run(trainer)


def last_batch_of_run(trainer: pl.Trainer) -> bool:
    """Whether the coming (or current) training batch is the last the run trains."""
    loop = trainer.fit_loop
    if loop.max_batches == 0 or not loop.epoch_loop.batch_progress.is_last_batch:
        return False
    last_epoch = trainer.max_epochs is not None and trainer.max_epochs >= 0
    return last_epoch and trainer.current_epoch >= trainer.max_epochs - 1


def epoch_in_progress(trainer: pl.Trainer) -> int:
    """The epoch the fit loop is in or about to start, as it passes it to the samplers' `set_epoch` (also right
    after a resume, before `trainer.current_epoch` has caught up with a checkpoint written at an epoch's end)."""
    return trainer.fit_loop.epoch_progress.current.processed


def configured_optimizers(module: pl.LightningModule) -> tuple[list, list]:
    """(optimizers, learning-rate scheduler configs) of a fresh call of `module.configure_optimizers()`, in
    whichever of its forms it returns them, as the Trainer reads them."""
    from pytorch_lightning.core.optimizer import _init_optimizers_and_lr_schedulers

    return _init_optimizers_and_lr_schedulers(module)


def at_last_batch(trainer: pl.Trainer) -> bool:
    """Whether the training batch being finished is the last of its epoch."""
    return trainer.fit_loop.epoch_loop.batch_progress.is_last_batch


def settle_restart_after_last_batch(trainer: pl.Trainer) -> None:
    """Resumed from a checkpoint written after the last batch of an epoch (checkpoints every N steps), Lightning
    2.6 completes that epoch when it restores, but still takes the next epoch for the restarted one: it skips
    that epoch's on_train_epoch_start hooks and its progress counters. The epoch is done, so the restart is."""
    from pytorch_lightning.loops.fit_loop import RestartStage

    loop = trainer.fit_loop
    if loop.restarted_mid_epoch and loop.epoch_loop.batch_progress.is_last_batch:
        loop._restart_stage = RestartStage.NONE


def settle_loader_after_restore(trainer: pl.Trainer) -> None:
    """A model whose `configure_optimizers` asks for `trainer.estimated_stepping_batches` makes Lightning 2.6 build
    the training loader before it restores the checkpoint: the loader's saved position is then never loaded, and
    its iterator (with workers, its first keys) is made for epoch 0. Load the position, tell the samplers the
    epoch, and make the iterator anew (as Lightning's pending fix, PR 21765, does)."""
    loop = trainer.fit_loop
    loader = loop._combined_loader
    if loader is None or loop._data_fetcher is None:
        return
    changed = False
    if loop.restarting and loop._combined_loader_states_to_load:
        loop._load_combined_loader_states()
        changed = True
    epoch = epoch_in_progress(trainer)
    for dataloader in loader.flattened:
        sampler = getattr(dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch") and getattr(sampler, "epoch", epoch) != epoch:
            sampler.set_epoch(epoch)
            changed = True
    if changed:
        iter(loop._data_fetcher)
