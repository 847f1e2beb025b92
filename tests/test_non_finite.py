"""Nothing non-finite is saved or used: every tensor of a checkpoint (weights, batch-norm statistics, optimizer
moments) is checked before it is written, a diverged run names the step and the tensor and the last good
checkpoint only if there is one, and the commands refuse a checkpoint that holds NaN or infinite values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_cli.assembly import load_model
from gan_cli.checkpoint import first_non_finite, read_checkpoint
from gan_cli.commands.train import train
from gan_cli.errors import NonFiniteLossError, UserError
from tests.conftest import QUICK, SMALL, run_cli, unwrapped

#: 4 batches an epoch of a tiny DCGAN, whose discriminator has batch norms
POISONED = [*QUICK, *SMALL["dcgan"], "trainer.max_epochs=3", "logger=none",
            "+callbacks.poison._target_=tests.helpers.PoisonBatchNorm"]


def test_the_first_non_finite_tensor_is_named_by_its_path():
    tree = {"state_dict": {"a": torch.ones(3), "steps": torch.tensor([1, 2])},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.tensor([1.0, float("nan")])}}}]}
    assert first_non_finite(tree) == "optimizer_states[0].state.0.exp_avg"
    tree["state_dict"]["b"] = torch.tensor([float("-inf")])
    assert first_non_finite(tree) == "state_dict.b"
    assert first_non_finite({"x": torch.zeros(2), "n": 3}) is None


def test_overflowing_batch_norm_statistics_stop_the_run_before_a_checkpoint(make_cfg):
    cfg = make_cfg(*POISONED, "+callbacks.poison.at_batch=6")
    with pytest.raises(NonFiniteLossError) as caught:
        train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    message = str(caught.value)
    # found when epoch 1's checkpoint (after batch 8) was about to be written
    assert "step 8" in message and "state_dict.discriminator." in message and "running_var" in message
    assert f"the last good one is {last}" in message and f"ckpt_path={last}" in message
    checkpoint = read_checkpoint(last)  # epoch 0's, finite, and readable
    assert checkpoint["epoch"] == 0 and first_non_finite(checkpoint["state_dict"]) is None


def test_without_an_earlier_checkpoint_none_is_named(make_cfg):
    cfg = make_cfg(*POISONED, "+callbacks.poison.at_batch=2")
    with pytest.raises(NonFiniteLossError, match="the run has no earlier one") as caught:
        train(cfg)
    assert "last.ckpt" not in str(caught.value)
    assert not (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").exists()


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> Path:
    """A checkpoint of a tiny DCGAN with one NaN weight, as a run without the checks would have written it."""
    from tests.conftest import compose_train

    run = tmp_path_factory.mktemp("diverged")
    cfg = compose_train(run / "run", [*QUICK, *SMALL["dcgan"], "logger=none", "callbacks=none",
                                      "+callbacks.last._target_=pytorch_lightning.callbacks.ModelCheckpoint",
                                      f"+callbacks.last.dirpath={run / 'run' / 'checkpoints'}",
                                      "+callbacks.last.filename=last"])
    train(cfg)
    checkpoint = torch.load(run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    name = next(k for k, v in checkpoint["state_dict"].items() if k.startswith("generator.") and v.is_floating_point())
    checkpoint["state_dict"][name].view(-1)[0] = float("nan")
    torch.save(checkpoint, run / "diverged.ckpt")
    return run / "diverged.ckpt"


def test_loading_a_checkpoint_with_nan_weights_is_refused(diverged):
    for load in (read_checkpoint, load_model):
        with pytest.raises(UserError, match=r"holds NaN or infinite values \(state_dict\.generator\..*earlier"):
            load(diverged)


@pytest.mark.slow
@pytest.mark.parametrize("command, args", [("gan-sample", ["output=s.png"]), ("gan-eval", ["metrics=digits"]),
                                           ("gan-train", [])])
def test_the_commands_refuse_it_in_one_paragraph(tmp_path, diverged, command, args):
    result = run_cli([f"ckpt_path={diverged}", *args], tmp_path, module=command)
    assert result.returncode == 1
    text = unwrapped(result.stderr + result.stdout)
    assert "NaN or infinite values" in text and "Traceback" not in text
