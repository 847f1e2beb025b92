"""How long a user waits: from typing the command to the first training step, and (for the default job) to its
last checkpoint. Each is one real `gan-train` process started here; the first-step time is written by the
`FirstStep` callback, given on the command line with this folder on PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl

HERE = Path(__file__).resolve().parent
GAN_TRAIN = Path(sys.executable).parent / "gan-train"


class FirstStep(pl.Callback):
    """Writes the wall-clock time at which the first training batch starts to `path`, and ends the process: what
    follows is measured elsewhere."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        Path(self.path).write_text(repr(time.time()))
        os._exit(0)


def run_gan_train(overrides: list[str], timeout: float = 1800) -> float:
    """Seconds `gan-train <overrides>` took from its start to its exit (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "PYTHONWARNINGS": "ignore"}
    began = time.time()
    done = subprocess.run([str(GAN_TRAIN), *overrides], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"gan-train {' '.join(overrides)} failed:\n{done.stderr[-2000:]}")
    return time.time() - began


def seconds_to_first_step(overrides: list[str]) -> float:
    """From starting `gan-train <overrides>` to the start of its first training batch."""
    with tempfile.TemporaryDirectory(prefix="gan-cli-first-step-") as folder:
        stamp = Path(folder) / "first_step"
        began = time.time()
        run_gan_train([*overrides, f"hydra.run.dir={folder}/run", "+callbacks.first_step._target_="
                       "throughput_startup.FirstStep", f"+callbacks.first_step.path={stamp}"])
        return float(stamp.read_text()) - began


def seconds_of_default_job(extra: list[str]) -> float:
    """`make train`'s job (gan-train with its defaults, plus `extra`), from the command to its last checkpoint."""
    with tempfile.TemporaryDirectory(prefix="gan-cli-default-job-") as folder:
        seconds = run_gan_train([*extra, f"hydra.run.dir={folder}/run"])
        if not (Path(folder) / "run" / "checkpoints" / "last.ckpt").is_file():
            raise RuntimeError("the default job wrote no last.ckpt")
        return seconds
