"""Sweep jobs with several tasks on submitit's local executor: the launcher starts the ranks, as under SLURM.

Under SLURM (launcher=slurm), srun starts one task per GPU and Lightning's SLURMEnvironment reads their
ranks from SLURM's variables, so gan-train is not re-launched. submitit's local executor (launcher=local)
also starts `tasks_per_node` processes per job, but only tells them their ranks in its own variables
(SUBMITIT_LOCAL_*), and Lightning would take each for a separate run and start processes of its own. This
callback, run in each task before gan-train, translates them into the torch.distributed variables (LOCAL_RANK
and the main address and port), with which Lightning joins the tasks as the ranks of one DDP run.
"""

from __future__ import annotations

import os
import random
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SubmititRanks(Callback):
    """Hydra callback of launcher=local: exports the task's rank when a job has several tasks."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("SUBMITIT_EXECUTOR") != "local" or int(os.environ.get("SUBMITIT_LOCAL_NTASKS", 1)) < 2:
            return
        import submitit

        job = submitit.JobEnvironment()
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            # the same in every task of the job, and most likely another in a job beside it
            MASTER_PORT=os.environ.get("MASTER_PORT") or str(random.Random(job.job_id).randint(20000, 60000)),
            NODE_RANK="0",
            LOCAL_RANK=str(job.local_rank),
        )
