"""Resuming with changed settings never ignores them silently: each setting that differs from the checkpoint's
run config is applied, or the resume is refused with the list of what differs.

Applied: how the run is carried out (trainer, callbacks, loggers, metrics, sweeps, the loader's workers and
batch size) and the optimizers' settings (model.lr, g_lr, d_lr, model.optimizer.*, the learning-rate schedule),
which `ResumedSettings` writes into the restored optimizers and schedules, as users of other tools expect.
Refused: what the restored state would contradict (the model, its loss and tricks, the data, the text encoder,
the seed). The checkpoints of the resumed run store the settings that ran.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

from gan_cli.errors import UserError
from gan_cli.lightning_state import configured_optimizers

log = logging.getLogger(__name__)

#: settings a resumed run applies as they are: how it is carried out, not what it learns
CARRIED_OUT = ("trainer.", "engine.", "callbacks.", "logger.", "metrics.", "paths.", "hparams_search.", "launcher.",
               "debug.", "ckpt_path", "optimized_metric", "optimized_direction", "task_name", "data.num_workers",
               "data.pin_memory", "data.batch_size")
#: model settings that go into the optimizers and their schedules (ResumedSettings writes them there)
OPTIMIZER = ("model.lr", "model.g_lr", "model.d_lr", "model.optimizer.", "model.lr_constant_epochs",
             "model.lr_decay_epochs", "model.lr_decay", "model.lr_decay_rate", "model.lr_decay_steps",
             "model.finetune_lr")


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of a nested config (lists are values)."""
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat |= flatten(value, f"{prefix}{key}.")
        return flat or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): config}


def changed_settings(saved: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """(key, checkpoint's value, this run's value) for every setting that differs, the run folder's own paths
    (which every new run has anew) set aside."""
    old_root, new_root = str(saved.get("paths", {}).get("output_dir")), str(current.get("paths", {}).get("output_dir"))

    def same(a: Any, b: Any) -> bool:
        return a == b or (isinstance(a, str) and isinstance(b, str) and a.replace(old_root, new_root) == b)

    before, after = flatten(saved), flatten(current)
    return [(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if not same(before.get(key), after.get(key))]


def applies(key: str) -> bool:
    return any(key == rule.rstrip(".") or key.startswith(rule) for rule in (*CARRIED_OUT, *OPTIMIZER))


def check_changed_settings(ckpt_path: str, changes: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """Refuse (UserError) a resume that changes what it cannot apply; return the changes it applies."""
    refused = [change for change in changes if not applies(change[0])]
    if refused:
        listed = "; ".join(f"{key}: {old!r} in the checkpoint, {new!r} now" for key, old, new in refused[:8])
        more = f" (and {len(refused) - 8} more)" if len(refused) > 8 else ""
        raise UserError(
            f"ckpt_path={ckpt_path} was written with other settings than this run's, which a resumed run cannot "
            f"apply: {listed}{more}. Resume with the checkpoint's settings (they are in its run folder's "
            ".hydra/config.yaml), or start a new run. A resume applies changes to the trainer, callbacks, "
            "loggers, metrics, data.batch_size and data.num_workers, and to the learning rates and optimizer "
            "settings (model.lr, model.optimizer.*)."
        )
    for key, old, new in changes:
        if not key.startswith(("paths.", "ckpt_path")):
            log.info("Resumed with %s = %r (the checkpoint's run had %r)", key, new, old)
    return changes


class ResumedSettings(pl.Callback):
    """Writes this run's optimizer settings (learning rates, betas, weight decay, ...) and learning-rate schedules
    into the optimizers and schedules restored from the checkpoint, which would otherwise keep the old ones."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizers, schedules = configured_optimizers(pl_module)
        for restored, fresh in zip(trainer.optimizers, optimizers):
            for group, new in zip(restored.param_groups, fresh.param_groups):
                group.update({key: value for key, value in new.items() if key != "params"})
        for restored, fresh in zip(trainer.lr_scheduler_configs, schedules):
            old, new = restored.scheduler, fresh.scheduler
            ratios = [b / a if a else 1.0 for a, b in zip(old.base_lrs, new.base_lrs)]
            old.base_lrs = list(new.base_lrs)
            if hasattr(new, "lr_lambdas"):  # LambdaLR: this run's schedule, at the restored epoch
                old.lr_lambdas = new.lr_lambdas
                lrs = [base * schedule(old.last_epoch) for base, schedule in zip(old.base_lrs, old.lr_lambdas)]
            else:  # multiplicative schedules: the restored rates, scaled by the new initial ones
                lrs = [lr * ratio for lr, ratio in zip(old.get_last_lr(), ratios)]
            for group, lr in zip(old.optimizer.param_groups, lrs):
                group["lr"] = lr
            old._last_lr = lrs
