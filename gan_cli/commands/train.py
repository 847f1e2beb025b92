"""gan-train: builds the objects of a training run from its config and fits: the one path every model takes."""

from __future__ import annotations

import gc
import logging
import os
import shlex
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning_fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from gan_cli.assembly import build_model
from gan_cli.callbacks.loop_restart import LoopRestart
from gan_cli.callbacks.preemption import Preemption
from gan_cli.callbacks.resumed_settings import OPTIMIZER, ResumedSettings, changed_settings, check_changed_settings
from gan_cli.checkpoint import AtomicCheckpointIO, read_checkpoint, remove_orphans
from gan_cli.config.run_folder import folder_in_use
from gan_cli.config.schemas import validate_targets
from gan_cli.errors import UserError
from gan_cli.fine_tuning import fine_tune
from gan_cli.loggers.hparams_view import write_hparams_view
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.trackers import finish as finish_trackers
from gan_cli.tricks.base import model_name

log = logging.getLogger(__name__)

# A resumed run writes into its own folder, so ModelCheckpoint's notes of the old one do not carry over (they
# are not needed: last.ckpt is rewritten and the periodic files are named by epoch)
warnings.filterwarnings("ignore", message="The dirpath has changed from")
# Checkpoints every N steps of a manual-optimisation model hold the state after its step, as gan-cli wants
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization and every_n_train_steps")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every named `_target_` node of a group such as `callbacks` or `logger`."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


#: logger target -> the package it needs
TRACKER_PACKAGES = {"WandbLogger": "wandb", "MLFlowLogger": "mlflow-skinny", "CometLogger": "comet-ml",
                    "NeptuneLogger": "neptune"}


def instantiate_loggers(group: DictConfig | None) -> list[Any]:
    """The `logger` group's loggers; a tracker whose package is not installed is named with how to install it."""
    loggers = []
    for name, node in (group or {}).items():
        if not (isinstance(node, DictConfig) and "_target_" in node):
            continue
        store = str(node.get("tracking_uri") or "")
        if store.startswith("sqlite:///"):  # MLflow's local store: SQLite makes the file, not its folder
            Path(store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            loggers.append(instantiate(node))
        except Exception as error:
            missing = isinstance(error, ModuleNotFoundError) or isinstance(error.__cause__, ModuleNotFoundError) \
                or "not installed" in str(error)
            package = TRACKER_PACKAGES.get(str(node._target_).rsplit(".", 1)[-1])
            if not (missing and package):
                raise
            raise UserError(f"logger={name} needs the {package} package, which is not installed: pip install "
                            f"'gan-cli[trackers]' (or pip install {package}), or choose another logger "
                            "(logger=tensorboard, csv).") from error
    return loggers


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Validate `cfg`, seed, and build the DataModule, the model and the Trainer."""
    validate_targets(cfg)
    refuse_unused_loss(cfg)
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    log.info("Data: <%s> with %s", cfg.data._target_, cfg.data.get("dataset", {}).get("_target_", cfg.data.get("layout")))
    datamodule = instantiate(cfg.data)
    log.info("Model: <%s>", cfg.model._target_)
    model = build_model(cfg)
    fine_tune(model, cfg.get("init_from"), cfg.get("freeze_d") or 0)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_group(cfg.get("callbacks"))
    if cfg.get("metrics"):
        from gan_cli.evaluation import build_callback  # torchmetrics' image metrics load only when asked for

        callbacks.append(build_callback(cfg.metrics))
    if not cfg.trainer.get("enable_progress_bar", True):  # else Lightning refuses the configured bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if cfg.get("engine"):
        callbacks.append(instantiate(cfg.engine))
    callbacks.append(LoopRestart())
    if cfg.trainer.get("enable_checkpointing", True):  # a checkpoint callback, which Lightning refuses without it
        callbacks.append(Preemption(task_overrides()))
    loggers = instantiate_loggers(cfg.get("logger"))
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # SLURM's requeue signal is handled at a step boundary by Preemption
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
    return datamodule, model, trainer


def task_overrides() -> list[str]:
    """The overrides the run was started with (for the command that resumes it)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def requeued_checkpoint(cfg: DictConfig) -> str | None:
    """A requeued SLURM job's own last checkpoint: SLURM restarts the same command (and submitit the same job, in
    the same run folder), which then resumes where it stopped."""
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0 and last.is_file():
        log.info("Requeued SLURM job %s: resuming from %s", os.environ.get("SLURM_JOB_ID"), last)
        return str(last)
    return None


def refuse_unused_loss(cfg: DictConfig) -> None:
    """A model without an adversarial game (autoencoder, VAE, RBM, classifier, ...) would silently ignore a
    `loss=` choice from the command line: say so instead."""
    model_class = get_class(cfg.model._target_)
    if issubclass(model_class, AdversarialModule) or not HydraConfig.initialized():
        return
    given = [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").split("=", 1)[0].split(".")[0] == "loss"]
    if given:
        raise UserError(f"{model_name(model_class)} has no adversarial loss, so {given[0]} would change nothing: it trains "
                        "with its own objective (see its config, gan-train model=... --cfg job). Remove loss=, or "
                        "pick a GAN model.")


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as `cfg` says; returns the final logged metrics (for sweepers)."""
    datamodule, model, trainer = build(cfg)
    ckpt_path = cfg.get("ckpt_path") or requeued_checkpoint(cfg)
    clean_up_after_kills(cfg, ckpt_path)
    if ckpt_path:
        changes = check_resumable(ckpt_path, model)
        if any(key.startswith(OPTIMIZER) for key, _, _ in changes):
            trainer.callbacks.append(ResumedSettings())
        log.info("Resuming from %s", ckpt_path)
    log_config(trainer, cfg)
    announce(trainer)
    try:
        with startup_objects_frozen():
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        write_hparams_view(trainer, cfg)
    finally:  # a sweep's next job gets a W&B run of its own, even after a failed one
        finish_trackers(trainer.loggers)
    report(trainer)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def clean_up_after_kills(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Delete the half-written checkpoint files that killed runs left in this run's folder and in the resumed
    checkpoint's (unless a live run holds that one)."""
    folders = [Path(cfg.paths.output_dir) / "checkpoints"]
    if ckpt_path and not folder_in_use(Path(ckpt_path).expanduser().parent.parent):
        folders.append(Path(ckpt_path).expanduser().parent)
    for folder in dict.fromkeys(f.resolve() for f in folders):
        for orphan in remove_orphans(folder):
            log.info("Removed %s, a checkpoint that a killed run had not finished writing", orphan)


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Start-up leaves ~500k long-lived objects (configs, modules, libraries); freezing them while training
    spares the garbage collector a ~0.2 s full pass over them in the middle of a run. They are unfrozen
    afterwards so that interpreter exit cleans them up as usual."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def check_resumable(ckpt_path: str, model: pl.LightningModule) -> list[tuple[str, Any, Any]]:
    """Fail before training if the checkpoint is missing, unreadable, of another architecture, or written with
    settings this run changes but cannot apply; return the changed settings it applies."""
    checkpoint = read_checkpoint(ckpt_path)
    saved = checkpoint["state_dict"]
    current = model.state_dict()
    missing = [k for k in current if k not in saved]
    different = [k for k in current if k in saved and saved[k].shape != current[k].shape]
    if missing or different:
        key = (missing or different)[0]
        detail = f"it has no {key}" if missing else f"{key} has shape {tuple(saved[key].shape)}, not {tuple(current[key].shape)}"
        raise UserError(
            f"ckpt_path={ckpt_path} was written by a different model or data setting ({detail}). Resume with "
            "the same model=, data= and network settings as the run that wrote it; they are in its "
            ".hydra/config.yaml next to the checkpoints folder."
        )
    return check_changed_settings(ckpt_path, changed_settings(checkpoint["gan_cli"]["config"] or {},
                                                              model.run_config))


@rank_zero_only
def log_config(trainer: pl.Trainer, cfg: DictConfig) -> None:
    for logger in trainer.loggers:
        logger.log_hyperparams({k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig)
                                else cfg[k] for k in ("model", "data", "trainer", "seed") if k in cfg})


def tensorboard_command(logdir: Path) -> str:
    """The TensorBoard command for `logdir` that works as typed: `tensorboard` if the shell finds the one installed
    with gan-cli, else its full path (a virtual environment that is not activated)."""
    beside = Path(sys.executable).parent / "tensorboard"
    found = shutil.which("tensorboard")
    program = "tensorboard" if found and (not beside.exists() or Path(found).resolve() == beside.resolve()) \
        else shlex.quote(str(beside)) if beside.exists() else f"{shlex.quote(sys.executable)} -m tensorboard.main"
    return f"{program} --logdir {shlex.quote(str(logdir))}"


@rank_zero_only
def announce(trainer: pl.Trainer) -> None:
    """Where the run writes and how to watch it, before the first step."""
    lines = [f"Run folder: {Path(trainer.default_root_dir).resolve()}"]
    lines += [f"  watch it:  {tensorboard_command(Path(logger.log_dir).resolve())}" for logger in trainer.loggers
              if isinstance(logger, TensorBoardLogger)]
    print("\n".join(lines), flush=True)


@rank_zero_only
def report(trainer: pl.Trainer) -> None:
    """Tell the user where the results are (what is to paste on a command line is quoted for a shell)."""
    run = Path(trainer.default_root_dir).resolve()
    lines = [f"Run folder: {run}"]
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"))
    if ckpts:
        last = run / "checkpoints" / "last.ckpt"
        resume = shlex.quote(f"ckpt_path={last if last.exists() else ckpts[-1]}")
        lines.append(f"  checkpoints:  {run / 'checkpoints'}  (resume: {resume})")
    latest = sorted(p.name for p in (run / "samples").glob("*_latest.png"))
    if latest:
        lines.append(f"  sample grids: {run / 'samples'}  (latest: {', '.join(latest)})")
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            lines.append(f"  TensorBoard:  {tensorboard_command(Path(logger.log_dir).resolve())}")
    print("\n".join(lines), flush=True)


def metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The metric a sweeper optimises, or a clear error listing the ones there are."""
    if not name:
        return None
    if name not in metrics:
        raise UserError(
            f"optimized_metric={name} was not logged by this run. Logged metrics: {', '.join(sorted(metrics)) or 'none'}."
        )
    return metrics[name]


