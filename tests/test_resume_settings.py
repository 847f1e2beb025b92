"""Resuming with changed settings: a new learning rate is written into the restored optimizers (and schedules),
other changes of how the run is carried out apply, and what the restored state would contradict is refused in
one paragraph listing the differences. The resumed run's checkpoints store the settings that ran."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_cli.callbacks.resumed_settings import changed_settings
from gan_cli.commands.train import train
from gan_cli.errors import UserError
from tests.conftest import QUICK, SMALL, compose_train

RUN = [*QUICK, *SMALL["dcgan"], "logger=none", "trainer.max_epochs=1", "seed=3"]
TRANSLATE = ["model.lr_constant_epochs=1", "model.lr_decay_epochs=2"]


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("first")
    train(compose_train(root / "run", RUN))
    return root / "run" / "checkpoints" / "last.ckpt"


def test_the_settings_diff_ignores_the_run_folder_and_names_each_change():
    saved = {"paths": {"output_dir": "/a"}, "trainer": {"default_root_dir": "/a", "max_epochs": 1}, "model": {"lr": 1}}
    now = {"paths": {"output_dir": "/b"}, "trainer": {"default_root_dir": "/b", "max_epochs": 3}, "model": {"lr": 2}}
    assert changed_settings(saved, now) == [("model.lr", 1, 2), ("trainer.max_epochs", 1, 3)]


def test_a_new_learning_rate_is_written_into_the_restored_optimizers(tmp_path, first):
    cfg = compose_train(tmp_path / "resumed", [*RUN, "trainer.max_epochs=2", "model.lr=1e-5", f"ckpt_path={first}"])
    train(cfg)
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert [group["lr"] for opt in checkpoint["optimizer_states"] for group in opt["param_groups"]] == [1e-5, 1e-5]
    assert checkpoint["gan_cli"]["config"]["model"]["lr"] == 1e-5  # the saved config states what ran
    # the moments restored from the first run were kept (Adam's state carries on)
    assert checkpoint["optimizer_states"][0]["state"][0]["step"] > torch.load(first, weights_only=True)[
        "optimizer_states"][0]["state"][0]["step"]


def test_what_the_restored_state_contradicts_is_refused_with_the_list(tmp_path, first):
    cfg = compose_train(tmp_path / "refused", [*RUN, "trainer.max_epochs=2", "seed=4", "loss=hinge",
                                               f"ckpt_path={first}"])
    with pytest.raises(UserError) as caught:
        train(cfg)
    message = str(caught.value)
    assert "seed: 3 in the checkpoint, 4 now" in message and "loss._target_" in message
    assert ".hydra/config.yaml" in message


def test_a_schedule_is_rebuilt_with_the_new_rate_at_the_restored_epoch(tmp_path, image_pairs):
    from tests.conftest import translation_quick

    base = [*translation_quick("pix2pix", image_pairs), "logger=none", *TRANSLATE]
    train(compose_train(tmp_path / "a", [*base, "trainer.max_epochs=2"]))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    train(compose_train(tmp_path / "b", [*base, "trainer.max_epochs=3", "model.lr=1e-3", f"ckpt_path={last}"]))
    checkpoint = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    # constant for 1 epoch, then linearly to zero over 2: after epoch 2 (3 steps of the schedule) the factor is 0
    schedule = checkpoint["lr_schedulers"][0]
    assert schedule["base_lrs"] == [1e-3] and schedule["last_epoch"] == 3
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["initial_lr"] == 1e-3
