"""One run per folder: a Hydra callback takes a lock on the run folder (a sweep's folder) before Hydra writes
anything into it, and holds it until the process ends, however it ends (the operating system drops the lock
of a killed process). A second gan-train aimed at the same folder stops at once, naming the first one.

The lock is a POSIX record lock (lockf), which belongs to the process alone: DataLoader workers forked from a
killed run do not keep it, as they would keep a flock while they wind down."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gan_cli.errors import UserError, user_message

LOCK_FILE = ".gan-train.lock"
#: the open lock files of this process (a lock lasts as long as its file stays open)
_held: dict[Path, TextIO] = {}


def secondary_rank() -> bool:
    """Whether this process is a rank > 0 of a multi-process run, which shares the run folder of rank 0."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def hold_folder(folder: Path) -> None:
    """Lock `folder` for this process, or raise a UserError naming the process that holds it (or why the folder
    cannot be written)."""
    folder = folder.resolve()
    if folder in _held or secondary_rank():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as err:
        raise UserError(
            f"gan-train cannot write into the run folder {folder} ({err.strerror or err}). Run it where you may "
            "write: from another working directory, or with paths.log_dir=DIR (runs go to DIR/train/...) or "
            "hydra.run.dir=DIR."
        ) from err
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise UserError(
            f"Another gan-train ({holder}) is writing into {folder}. Two runs in one folder would overwrite each "
            "other's checkpoints and configs. Wait for it to end or stop it, or give this run a folder of its own "
            "(leave hydra.run.dir= out, or name another folder)."
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"PID {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    lock.flush()
    _held[folder] = lock


def folder_in_use(folder: Path) -> bool:
    """Whether a live process (not this one) holds `folder`'s lock."""
    folder = folder.resolve()
    if folder in _held or not (folder / LOCK_FILE).is_file():
        return False
    with open(folder / LOCK_FILE, "a+", encoding="utf-8") as lock:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(lock, fcntl.LOCK_UN)
    return False


class RunFolderLock(Callback):
    """Hydra callback (conf/hydra/default.yaml): locks the run folder before the run starts (in a sweep, the
    sweep's folder), before Hydra writes the run's config into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._hold(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._hold(config, "sweep")

    @staticmethod
    def _hold(config: DictConfig, mode: str) -> None:
        # Hydra sets this only when the job starts; the folder's name needs it (${hydra:runtime.choices.model})
        HydraConfig.instance().set_config(config)
        try:
            hold_folder(Path(config.hydra[mode].dir))
        except UserError as error:
            print(f"\ngan-cli error: {user_message(error)}\n", file=sys.stderr, flush=True)
            sys.exit(1)
