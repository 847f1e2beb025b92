"""hparams_search=optuna: Hydra's Optuna sweeper, ending with the sweep's summary table also when no trial
finished (Optuna has no best trial then, and the plain sweeper stops on its error instead). A Hydra plugin, so
in the hydra_plugins namespace, where Hydra looks for sweepers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig

from gan_cli.errors import UserError, user_message
from gan_cli.sweeps.summary import summarize


class OptunaSearch(OptunaSweeper):
    """The sweeper of conf/hparams_search/optuna.yaml."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return super().sweep(arguments)
        except ValueError as err:
            if "No trials are completed" not in str(err):
                raise
            summarize(Path(self.config.hydra.sweep.dir), self.config.get("optimized_direction") or "minimize")
            error = UserError(f"No trial of the search finished with a value of optimized_metric="
                              f"{self.config.get('optimized_metric')}: the failed trials' train.log files say why "
                              "(their errors are in the table above).")
            print(f"\ngan-cli error: {user_message(error)}\n", file=sys.stderr, flush=True)
            sys.exit(1)
