"""Sweeps: every job's result in its own folder, and the sweep's best run at the end.

`SweepSummary` is a Hydra callback, so it works the same with every sweeper (basic, Optuna) and every
launcher (in-process, submitit): `on_job_end` runs inside the job's own process, wherever that is, and
writes <job folder>/job_result.json; `on_multirun_end` runs in the process that started the sweep after
the last job, reads them back, prints a table and the best run, and writes <sweep dir>/best_run.json.

A failed job does not stop a sweep. gan-train catches the error in a sweep job (`job_failed`): it is logged
to the job's log, noted here for the result file, and the job returns None. Not NaN: hydra-optuna-sweeper
1.3 tells Optuna 2.10 a NaN as a failed trial *with* a value, which Optuna refuses, and the sweep crashes.
With None, Optuna records the trial as FAIL ("Return value must be float-castable") and asks for the next.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_cli.errors import UserError, user_message

log = logging.getLogger(__name__)

RESULT_FILE = "job_result.json"
BEST_RUN_FILE = "best_run.json"

#: the error of the sweep job running in this process, if it failed (reset when a job starts)
_failure: str | None = None


def in_sweep() -> bool:
    """Whether this process runs a job of a sweep (gan-train -m, hparams_search=..., launcher=...)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_failed(error: BaseException, with_traceback: bool) -> None:
    """Log why a sweep job failed (into its log; the traceback unless it is a user's mistake) and note it
    for the job's result file. The caller then returns None, and the sweep goes on."""
    global _failure
    _failure = f"{type(error).__name__}: {user_message(error)}"
    if with_traceback:
        log.error("This job failed; the sweep goes on.", exc_info=error)
    else:
        log.error("This job failed; the sweep goes on.\ngan-cli error: %s", user_message(error))


def check_metric_is_logged(cfg: DictConfig) -> None:
    """Fail before training, not after it, when optimized_metric is a quality metric no metrics= option
    computes (hparams_search=optuna would otherwise train every trial in vain)."""
    name = cfg.get("optimized_metric")
    if name and name.startswith("metrics/") and not cfg.get("metrics"):
        raise UserError(
            f"optimized_metric={name} is logged only when a metrics= option is chosen, and this run has none. "
            "Add one (e.g. metrics=digits for MNIST-like data, metrics=inception for photos), or optimise a "
            "training curve instead, e.g. optimized_metric=train/g_loss."
        )


def sweep_value(value: float | None, name: str | None) -> float | None:
    """What a job returns to the sweeper: a NaN metric in a sweep is a failed job (see the module docstring)."""
    if value is not None and math.isnan(value) and in_sweep():
        raise UserError(f"optimized_metric={name} is NaN at the end of this run, so the run has no result.")
    return value


class SweepSummary(Callback):
    """Writes each sweep job's result file and, after the sweep, the table and the best run."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _failure
        _failure = None

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN or not _is_first_rank():
            return
        try:
            value, error = job_return.return_value, _failure
        except Exception as raised:  # the task raised (gan-train catches its errors, other tasks may not)
            value, error = None, f"{type(raised).__name__}: {raised}"
        folder = Path(config.hydra.runtime.output_dir)
        result = {
            "job": int(config.hydra.job.num),
            "folder": str(folder),
            "overrides": list(job_return.overrides or []),
            "optimized_metric": config.get("optimized_metric"),
            "value": None if value is None else float(value),
            "status": "failed" if error else "ok",
            "error": error,
        }
        (folder / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweep_can_score(config)
        except UserError as error:  # refused once, before the first job
            print(f"\ngan-cli error: {user_message(error)}\n", file=sys.stderr, flush=True)
            sys.exit(1)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summarize(sweep_dir, config.get("optimized_direction") or "minimize")
        results = [json.loads(p.read_text()) for p in sweep_dir.rglob(RESULT_FILE)]
        if results and all(r["status"] == "failed" for r in results):
            print(f"\ngan-cli error: every job of the sweep failed ({len(results)} of {len(results)}); their "
                  "train.log files say why.\n", file=sys.stderr, flush=True)
            sys.exit(1)


def check_sweep_can_score(config: DictConfig) -> None:
    """Refuse a sweep none of whose jobs could log its optimized_metric (a quality metric without metrics=)."""
    swept = [o.lstrip("+").split("=", 1)[0] for o in config.hydra.overrides.task]
    params = config.hydra.get("sweeper", {}).get("params") or {}
    if not any(name == "metrics" for name in [*swept, *params]):
        check_metric_is_logged(config)


def _is_first_rank() -> bool:
    """A job of several tasks (launcher=slurm or local with tasks_per_node > 1) runs this in each of them."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"))


def summarize(sweep_dir: Path, direction: str) -> dict | None:
    """Print the sweep's jobs and its best run; write the best run to <sweep_dir>/best_run.json."""
    results = sorted((json.loads(p.read_text()) for p in sweep_dir.rglob(RESULT_FILE)), key=lambda r: r["job"])
    if not results:
        return None
    metric = next((r["optimized_metric"] for r in results if r["optimized_metric"]), None)
    varying = _varying_overrides(results)
    lines = [f"Sweep of {len(results)} jobs in {sweep_dir}" + (f" ({direction} {metric}):" if metric else ":"),
             f"  {'job':>4}  {metric or 'status':>14}  overrides"]
    for r in results:
        shown = "failed" if r["status"] == "failed" else r["status"] if r["value"] is None else f"{r['value']:.6g}"
        note = f"   <- {r['error'].splitlines()[0][:100]}" if r["error"] else ""
        lines.append(f"  {r['job']:>4}  {shown:>14}  {' '.join(varying[r['job']]) or '-'}{note}")
    scored = [r for r in results if r["status"] == "ok" and r["value"] is not None and not math.isnan(r["value"])]
    best = (max if direction == "maximize" else min)(scored, key=lambda r: r["value"]) if scored else None
    if best:
        summary = {**best, "direction": direction}
        (sweep_dir / BEST_RUN_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        lines += [f"Best run: job {best['job']}, {metric}={best['value']:.6g}",
                  f"  folder:    {best['folder']}",
                  f"  overrides: {' '.join(best['overrides'])}",
                  f"  (also in {sweep_dir / BEST_RUN_FILE})"]
    elif metric:
        lines.append(f"No job finished with a value of {metric}: the failed jobs' train.log files say why.")
    print("\n".join(lines), flush=True)
    return best


def _varying_overrides(results: list[dict]) -> dict[int, list[str]]:
    """Each job's overrides less those every job has (the command line's own), so the table shows the sweep."""
    common = set.intersection(*(set(r["overrides"]) for r in results)) if len(results) > 1 else set()
    return {r["job"]: [o for o in r["overrides"] if o not in common] for r in results}
