"""Sweeps that cannot give an answer say so: a sweep whose every job failed ends with its summary and exit code 1,
a quality metric that no job could log is refused before the first job, and even a run shorter than one log
interval reports its losses."""

from __future__ import annotations

import pytest

from gan_cli.commands.train import train
from gan_cli.errors import UserError
from gan_cli.sweeps.summary import check_sweep_can_score
from tests.conftest import QUICK, SMALL, run_cli
from tests.test_sweeps import ONE_THREAD, TINY, output, results


@pytest.mark.slow
def test_a_sweep_whose_every_job_failed_shows_its_summary_and_exits_1(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", f"hydra.sweep.dir={sweep}", *TINY, "model.lr=-1.0,-2.0"], tmp_path, env=ONE_THREAD)
    assert result.returncode == 1, output(result)[-3000:]
    assert [job["status"] for job in results(sweep).values()] == ["failed", "failed"]
    assert "failed  model.lr=-1.0" in result.stdout and "failed  model.lr=-2.0" in result.stdout
    assert "every job of the sweep failed (2 of 2)" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_optuna_search_with_no_finished_trial_shows_its_summary_and_exits_1(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["hparams_search=optuna", f"hydra.sweep.dir={sweep}", *TINY, "hydra.sweeper.params=null",
                      "model.lr=choice(-1.0, -2.0)", "hydra.sweeper.n_trials=2"], tmp_path, env=ONE_THREAD)
    assert result.returncode == 1, output(result)[-3000:]
    assert [job["status"] for job in results(sweep).values()] == ["failed", "failed"]
    assert "failed  model.lr=" in result.stdout
    assert "No trial of the search finished with a value of optimized_metric=train/g_loss" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sweep_on_a_quality_metric_without_metrics_is_refused_before_any_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", f"hydra.sweep.dir={sweep}", *QUICK, *SMALL["dcgan"], "logger=none",
                      "optimized_metric=metrics/fid", "model.lr=1e-4,2e-4"], tmp_path, env=ONE_THREAD)
    assert result.returncode == 1, output(result)[-3000:]
    assert "metrics/fid" in result.stderr and "metrics=" in result.stderr and "Traceback" not in result.stderr
    assert not results(sweep) and not list(sweep.glob("*/train.log"))  # no job started


def test_a_sweep_over_metrics_groups_is_not_refused(make_cfg):  # make_cfg: clears Hydra after
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="gan_cli.conf"):
        fixed = compose("train", overrides=["optimized_metric=metrics/fid"], return_hydra_config=True)
        swept = compose("train", overrides=["optimized_metric=metrics/fid", "metrics=inception"],
                        return_hydra_config=True)
    with pytest.raises(UserError, match="metrics"):
        check_sweep_can_score(fixed)
    check_sweep_can_score(swept)  # some job may log it: the jobs without metrics fail on their own
    searched = fixed.copy()  # hparams_search=optuna's search space names the group
    searched.hydra.sweeper.params = {"metrics": "choice(inception, digits)"}
    check_sweep_can_score(searched)


def test_a_run_shorter_than_one_log_interval_still_reports_its_losses(make_cfg, one_thread):
    # 3 batches, a log interval of 50: the run's last batch is logged anyway, so sweeps get a value
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "data.dataset.size=48", "trainer.log_every_n_steps=50", "logger=none")
    metrics = train(cfg)
    assert "train/g_loss" in metrics and "train/d_loss" in metrics
