"""Stopping a run on a signal without losing it: SIGTERM and SIGUSR1 (what SLURM and Kubernetes send before they
pre-empt a job) and Ctrl-C make the run write a resumable checkpoint at the next step boundary (the end of the
training batch), print the command that resumes it, and end with a non-zero exit status, 128 + the signal's
number as a shell reports a killed command. A second Ctrl-C stops at once. Under DDP the ranks agree on
stopping at the log steps (trainer.log_every_n_steps) and epoch ends, all at the same step, whichever of them
was signalled.

Under SLURM a SIGUSR1 (or submitit's SIGUSR2) also requeues the job (`scontrol requeue`, as Lightning's
SLURMEnvironment does, but with the checkpoint written at a step boundary rather than inside the signal
handler), and the requeued job resumes from its run folder's last.ckpt
(gan_cli.commands.train.requeued_checkpoint)."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from gan_cli.errors import RunInterrupted
from gan_cli.lightning_state import at_last_batch, logs_this_step

log = logging.getLogger(__name__)

#: SIGUSR2: what submitit asks SLURM to send before a job's time runs out (launcher=slurm)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)
REQUEUE = (signal.SIGUSR1, signal.SIGUSR2)


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes (an array task's as JOBID_TASKID); None outside a SLURM job."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def resume_command(overrides: list[str], ckpt_path: Path) -> str:
    """The gan-train command line that resumes the run: its overrides with ckpt_path set, quoted for a shell."""
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != "ckpt_path"]
    return shlex.join(["gan-train", *kept, f"ckpt_path={ckpt_path}"])


class Preemption(Checkpoint):
    """Installed by gan-train on every run (not a config choice: a run is never lost to a signal). A checkpoint
    callback for Lightning, which runs those after the model's own end-of-epoch hooks: a signal during an epoch's
    last batch is answered after the epoch's end (see gan_cli.callbacks.checkpoints)."""

    def __init__(self, overrides: list[str] | None = None) -> None:
        self.overrides = list(overrides or [])
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    # --- the handlers --------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # installed after Lightning's own (which would end the run at the epoch's end, with exit status 0)
        self.received = None
        for signum in SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._note)
            except ValueError:  # not the main thread: leave the signals to the process's own handlers
                return

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received is not None:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        if self.received is None:
            self.received = signum
            print(f"\n{signal.Signals(signum).name} received: gan-train stops after this training step and writes a "
                  "resumable checkpoint" + (" (Ctrl-C again to stop at once)." if signum == signal.SIGINT else "."),
                  file=sys.stderr, flush=True)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    # --- at the step boundary ------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if at_last_batch(trainer):
            return  # answered at the epoch's end
        if trainer.world_size > 1 and not logs_this_step(trainer):
            return  # the ranks agree at log steps only: a collective (and a device sync) less on the others
        self.stop_if_signalled(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stop_if_signalled(trainer, pl_module)

    def stop_if_signalled(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write last.ckpt and stop, if any rank was signalled."""
        received = self.received is not None
        if trainer.world_size > 1:  # every rank stops at the same step when any one was signalled
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        signum = self.received if self.received is not None else signal.SIGTERM
        ckpt_path = Path(trainer.default_root_dir).resolve() / "checkpoints" / "last.ckpt"
        trainer.save_checkpoint(ckpt_path)
        requeued = signum in REQUEUE and trainer.is_global_zero and self.requeue()
        step = getattr(pl_module, "batches_seen", trainer.global_step)
        name = signal.Signals(signum).name
        how = ("SLURM requeued the job, which resumes from it by itself; to resume it by hand instead:\n  "
               if requeued else "Resume with:\n  ")
        raise RunInterrupted(f"Stopped by {name} after training step {step} (epoch {trainer.current_epoch}), with "
                             f"a resumable checkpoint at {ckpt_path}. {how}{resume_command(self.overrides, ckpt_path)}",
                             exit_code=128 + signum)

    @staticmethod
    def requeue() -> bool:
        """Ask SLURM to requeue this job; whether it did."""
        job = slurm_job_id()
        if job is None:
            return False
        try:
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.warning("Could not requeue SLURM job %s: %s", job, err)
            return False
        if done.returncode != 0:
            log.warning("scontrol requeue %s failed: %s", job, done.stderr.strip())
        return done.returncode == 0
