"""Experiment trackers for real: logger=many sends the scalars, sample grids, the run's config and the evaluation
records to a W&B offline run and to a local MLflow store (besides TensorBoard and CSV); W&B stays offline unless an
account is set up; a tracker whose package is missing is named with how to install it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gan_cli.commands.train import build, train
from gan_cli.config.resolvers import _wandb_offline
from tests.conftest import POOLED, QUICK, SMALL
from tests.helpers import refusal


@pytest.fixture
def no_account(tmp_path, monkeypatch):
    """A user without a W&B account: no key, no ~/.netrc entry, no mode chosen."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "home").mkdir()


@pytest.mark.slow
def test_logger_many_reaches_wandb_offline_and_a_local_mlflow_store(make_cfg, tmp_path, no_account):
    from mlflow.tracking import MlflowClient

    logs = tmp_path / "logs"
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], *POOLED, "logger=many", f"paths.log_dir={logs}")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "tensorboard").is_dir() and (run / "csv" / "metrics.csv").is_file()

    (offline,) = (run / "wandb").glob("offline-run-*")
    history = next(offline.glob("run-*.wandb")).read_bytes()  # W&B's record log: keys and values verbatim
    for written in (b"train/g_loss", b"metrics/fid", b"evaluation", b"gan_cli.models.gans.gan.GAN"):
        assert written in history, written
    assert list((offline / "files" / "media" / "images").rglob("*.png")), "no sample grid reached W&B"

    client = MlflowClient(tracking_uri=f"sqlite:///{logs / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("gan-cli").experiment_id])
    assert {"train/g_loss", "metrics/fid"} <= set(mlflow_run.data.metrics)
    assert mlflow_run.data.params["model/_target_"] == "gan_cli.models.gans.gan.GAN"
    artifacts = {a.path for folder in ("images", "evaluation")
                 for a in client.list_artifacts(mlflow_run.info.run_id, folder)}
    assert "images/samples_epoch000.png" in artifacts and "evaluation/record_epoch000.json" in artifacts
    record = json.loads(Path(client.download_artifacts(mlflow_run.info.run_id, "evaluation/record_epoch000.json",
                                                       str(tmp_path))).read_text())
    assert "fid" in record["scores"] and "protocol" in record
    assert (logs / "mlflow-artifacts").is_dir()  # artifacts beside the store, not in the working folder


def test_wandb_is_offline_unless_an_account_is_set_up(tmp_path, monkeypatch, no_account):
    assert _wandb_offline() is True
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert _wandb_offline() is False
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / "home" / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    netrc.chmod(0o600)
    assert _wandb_offline() is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert _wandb_offline() is True


def test_a_tracker_that_is_not_installed_is_named_with_its_package(make_cfg, monkeypatch, no_account):
    import pytorch_lightning.loggers.wandb as wandb_logger

    monkeypatch.setattr(wandb_logger, "_WANDB_AVAILABLE", False)
    error = refusal(lambda: build(make_cfg(*QUICK, "logger=wandb")))
    assert "logger=wandb needs the wandb package" in str(error) and "gan-cli[trackers]" in str(error)


def test_a_list_of_loggers_is_several_at_once(make_cfg):
    cfg = make_cfg(*QUICK, "logger=[tensorboard,csv]")
    assert set(cfg.logger) == {"tensorboard", "csv"}
    _, _, trainer = build(cfg)
    assert {type(logger).__name__ for logger in trainer.loggers} == {"TensorBoardLogger", "CSVLogger"}
