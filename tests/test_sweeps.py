"""Metric-driven sweeps: Optuna, failed trials, the best-run summary, TensorBoard's hparams view, and the
submitit launchers (launcher=local runs here; launcher=slurm is checked up to the sbatch script)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_cli.commands import train as train_command
from gan_cli.loggers.hparams_view import write_hparams_view
from gan_cli.sweeps.summary import BEST_RUN_FILE, RESULT_FILE, summarize
from tests.conftest import QUICK, SMALL, compose_train, run_cli

TINY = [*QUICK, *SMALL["dcgan"], "logger=none", "optimized_metric=train/g_loss"]
#: tiny networks train several times faster on one thread, more so beside other jobs
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def results(sweep: Path) -> dict[int, dict]:
    """Each job's result file, by job number."""
    found = [json.loads(p.read_text()) for p in sweep.glob(f"*/{RESULT_FILE}")]
    return {r["job"]: r for r in found}


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


@pytest.mark.slow
def test_optuna_sweep_records_a_failed_trial_and_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    # No -m: hparams_search=optuna is a sweep by itself. Two trials over two learning rates, -1 out of its range;
    # the sampler's seed 10 draws -1 first, then 2e-4.
    result = run_cli(["hparams_search=optuna", f"hydra.sweep.dir={sweep}", *TINY, "hydra.sweeper.params=null",
                      "model.lr=choice(-1.0, 2e-4)", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=10"],
                     tmp_path, env=ONE_THREAD)
    assert result.returncode == 0, output(result)[-3000:]

    jobs = results(sweep)
    assert sorted(jobs) == [0, 1]
    failed, good = jobs[0], jobs[1]
    assert "model.lr=-1.0" in failed["overrides"] and "model.lr=0.0002" in good["overrides"]
    assert failed["status"] == "failed" and failed["value"] is None
    assert "model.lr=-1.0: must be greater than 0" in failed["error"]  # refused before the job built anything
    assert good["status"] == "ok" and good["value"] > 0
    log = (sweep / "0" / "train.log").read_text()
    assert "This job failed; the sweep goes on" in log and "model.lr=-1.0: must be greater than 0" in log

    # the sweeper logs this where it tells Optuna the trial failed (TrialState.FAIL)
    assert "Failed experiment: Return value must be float-castable. Got 'None'" in output(result)
    optimization = OmegaConf.load(sweep / "optimization_results.yaml")
    assert optimization.best_value == pytest.approx(good["value"]) and optimization.best_params["model.lr"] == 2e-4

    best = json.loads((sweep / BEST_RUN_FILE).read_text())
    assert best["job"] == 1 and best["folder"] == str(sweep / "1") and best["direction"] == "minimize"
    assert f"Best run: job 1, train/g_loss={good['value']:.6g}" in result.stdout
    assert "failed  model.lr=-1.0" in result.stdout


@pytest.mark.slow
def test_basic_sweep_returns_the_metric_and_picks_the_best_run_in_the_chosen_direction(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", f"hydra.sweep.dir={sweep}", *TINY, "model.lr=1e-4,2e-3", "optimized_direction=maximize"],
                     tmp_path, env=ONE_THREAD)
    assert result.returncode == 0, output(result)[-3000:]
    jobs = results(sweep)
    assert [jobs[i]["status"] for i in (0, 1)] == ["ok", "ok"]
    values = {i: jobs[i]["value"] for i in (0, 1)}
    assert values[0] != values[1]
    highest = max(values, key=values.get)
    best = json.loads((sweep / BEST_RUN_FILE).read_text())
    assert best["job"] == highest and best["value"] == values[highest] and best["direction"] == "maximize"
    assert f"Best run: job {highest}, train/g_loss={values[highest]:.6g}" in result.stdout
    for i in (0, 1):  # the table shows what the jobs differ in
        assert f"{values[i]:.6g}  model.lr={['0.0001', '0.002'][i]}" in result.stdout


@pytest.mark.slow
def test_local_launcher_runs_jobs_in_their_own_processes_and_records_a_failure(tmp_path):
    sweep = tmp_path / "sweep"
    missing = tmp_path / "missing.ckpt"
    result = run_cli(["launcher=local", f"hydra.sweep.dir={sweep}", *TINY, f"ckpt_path=null,{missing}"], tmp_path,
                     env=ONE_THREAD)
    assert result.returncode == 0, output(result)[-3000:]
    jobs = results(sweep)
    assert jobs[0]["status"] == "ok" and jobs[0]["value"] > 0 and (sweep / "0" / "checkpoints" / "last.ckpt").is_file()
    assert jobs[1]["status"] == "failed" and str(missing) in jobs[1]["error"]  # a UserError: its message
    assert "Traceback" not in (sweep / "1" / "train.log").read_text()
    # each job ran in a process of its own, started by submitit, whose logs are in the sweep folder
    logs = [p.read_text() for p in (sweep / ".submitit").glob("*/*_0_log.out")]
    assert len(logs) == 2 and all("Job completed successfully" in text for text in logs)
    assert json.loads((sweep / BEST_RUN_FILE).read_text())["job"] == 0


@pytest.mark.slow
def test_local_launcher_starts_the_ranks_of_a_ddp_job_itself(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["launcher=local", "hydra.launcher.tasks_per_node=2", "strategy=ddp", "trainer.accelerator=cpu",
                      f"hydra.sweep.dir={sweep}", *TINY], tmp_path, env=ONE_THREAD)
    assert result.returncode == 0, output(result)[-3000:]
    (job,) = (sweep / ".submitit").glob("*/*_submitted.pkl")
    tasks = sorted(job.parent.glob("*_log.out"))
    assert len(tasks) == 2  # two processes, both started by submitit, are the two ranks of one DDP run
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in tasks[0].read_text() and "GLOBAL_RANK: 1, MEMBER: 2/2" in tasks[1].read_text()
    checkpoint = torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["gan_cli"]["d_updates"] == 2  # 64 images over 2 ranks at batch 16
    assert list(results(sweep)) == [0] and results(sweep)[0]["status"] == "ok"  # written once, by rank 0


def test_slurm_launcher_settings_drive_the_trainer_and_lightning_takes_the_ranks_from_slurm(make_cfg, monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from lightning_fabric.plugins.environments import SLURMEnvironment
    from pytorch_lightning.utilities import rank_zero_only

    cfg = make_cfg("launcher=slurm", "hydra.launcher.gpus_per_node=2", "hydra.launcher.nodes=3", "strategy=ddp")
    launcher = HydraConfig.get().launcher
    assert launcher._target_.endswith("SlurmLauncher") and HydraConfig.get().mode.name == "MULTIRUN"
    assert (launcher.tasks_per_node, launcher.nodes) == (2, 3)
    assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.accelerator) == (2, 3, "gpu")

    # inside the SLURM job of task 4 (node 2, second GPU), as srun starts it
    slurm = {"SLURM_NTASKS": "6", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "3", "SLURM_PROCID": "5",
             "SLURM_LOCALID": "1", "SLURM_NODEID": "2", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train",
             "SLURM_NODELIST": "gpu[7-9]"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # else launching sets it
    for name in ("MASTER_ADDR", "MASTER_PORT"):  # SLURMEnvironment sets them: remove them after the test
        monkeypatch.setenv(name, "")             # (or later DDP tests would look for gpu7)
        monkeypatch.delenv(name)
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)  # the trainer sets it to its rank: restore
    trainer = instantiate(cfg.trainer, accelerator="cpu", logger=False)  # no GPU here: the same path on CPU
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.creates_processes_externally
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank, trainer.node_rank) == (6, 5, 1, 2)
    assert environment.main_address == "gpu7"
    # what Trainer.fit does first: check the settings against the job, and start no processes of its own
    assert trainer.strategy.launcher.launch(lambda: "trained", trainer=trainer) == "trained"
    assert trainer.strategy.launcher.procs == []

    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")  # a job that disagrees with the settings is refused
    trainer = instantiate(cfg.trainer, accelerator="cpu", logger=False)
    with pytest.raises(ValueError, match="ntasks-per-node=4"):
        trainer.strategy.launcher.launch(lambda: "trained", trainer=trainer)


@pytest.mark.slow
def test_slurm_launcher_submits_one_task_per_gpu_through_srun(tmp_path):
    bin_dir = tmp_path / "bin"  # a pretend cluster: sbatch keeps the script it is given and refuses the job
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\ncp "$1" "$CAPTURE"\necho "sbatch: no cluster here" >&2\nexit 1\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = tmp_path / "job.sh"
    result = run_cli(["launcher=slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.gpus_per_node=4",
                      "hydra.launcher.nodes=2", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90",
                      "model.lr=1e-4,2e-4"], tmp_path,
                     env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CAPTURE": str(script)})
    assert result.returncode == 1 and "sbatch: no cluster here" in result.stderr
    text = script.read_text()
    for line in ("--array=0-1", "--gpus-per-node=4", "--ntasks-per-node=4", "--nodes=2", "--partition=gpu",
                 "--time=90", "--job-name=train"):
        assert line in text, text
    assert "\nsrun " in text and "submitit.core._submit" in text  # srun starts the tasks (the ranks)


def test_hparams_view_holds_the_settings_and_the_logged_metric_names(tmp_path, one_thread):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    cfg = compose_train(tmp_path / "run", [*QUICK, *SMALL["dcgan"], "model.lr=3e-4"])
    datamodule, model, trainer = train_command.build(cfg)
    trainer.fit(model, datamodule=datamodule)

    def events() -> EventAccumulator:
        accumulator = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
        accumulator.Reload()
        return accumulator

    before = events()
    scalars = {tag: len(before.Scalars(tag)) for tag in before.Tags()["scalars"]}
    assert "train/g_loss" in scalars
    with pytest.raises(KeyError):  # no hparams view yet
        before.PluginTagToContent(metadata.PLUGIN_NAME)
    write_hparams_view(trainer, cfg)

    after = events()
    content = after.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["model.lr"].number_value == pytest.approx(3e-4)
    assert start.hparams["model.generator.ngf"].number_value == 4
    assert start.hparams["loss._target_"].string_value.endswith("NonSaturatingLoss")
    assert start.hparams["data.batch_size"].number_value == 16 and start.hparams["seed"].number_value == 42
    assert start.hparams["model.optimizer.betas"].string_value == "[0.5, 0.999]"
    assert "model.lr=3e-4" in start.hparams["overrides"].string_value
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    names = {m.name.tag for m in experiment.metric_infos}
    assert names == set(scalars) - {"epoch"} and "train/g_loss" in names  # the run's curves (epoch is no metric)
    # the values come from the curves already there: no scalar point was added
    assert {tag: len(after.Scalars(tag)) for tag in after.Tags()["scalars"]} == scalars


def test_summary_lists_the_runs_without_a_metric_and_skips_failed_ones(tmp_path, capsys):
    def job(num: int, value, status="ok", metric="train/g_loss"):
        folder = tmp_path / str(num)
        folder.mkdir(exist_ok=True)
        record = {"job": num, "folder": str(folder), "overrides": ["data=fake", f"model.lr={num}"],
                  "optimized_metric": metric, "value": value, "status": status, "error": None}
        (folder / RESULT_FILE).write_text(json.dumps(record))

    job(0, None, "failed")
    job(1, 0.5)
    job(2, 0.7)
    assert summarize(tmp_path, "maximize")["job"] == 2
    assert summarize(tmp_path, "minimize")["job"] == 1
    printed = capsys.readouterr().out
    assert "     0          failed  model.lr=0" in printed and "data=fake" not in printed.split("Best run")[0]

    for num in range(3):
        job(num, None, metric=None)
    (tmp_path / BEST_RUN_FILE).unlink()
    assert summarize(tmp_path, "minimize") is None and not (tmp_path / BEST_RUN_FILE).exists()
    printed = capsys.readouterr().out
    assert "Sweep of 3 jobs" in printed and "Best run" not in printed and "ok  model.lr=2" in printed
