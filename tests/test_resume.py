"""A run killed with SIGKILL and resumed from its last checkpoint ends with the same weights as a run
that was never interrupted (CPU, deterministic mode)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import QUICK, SMALL, run_cli, start_cli

ROOT = Path(__file__).resolve().parents[1]
ARGS = [*QUICK, "model=dcgan", *SMALL["dcgan"], "trainer.max_epochs=5", "trainer.deterministic=true", "seed=7",
        "logger=none", "callbacks.sample_grid.every_n_batches=3",
        "+callbacks.slow._target_=tests.helpers.SlowDown", "+callbacks.slow.seconds=0.25"]


def final_state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path):
    env = {"PYTHONPATH": str(ROOT)}
    straight = run_cli([*ARGS, f"hydra.run.dir={tmp_path / 'straight'}"], tmp_path, env=env)
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    proc = start_cli([*ARGS, f"hydra.run.dir={killed_dir}"], tmp_path, env)
    last = killed_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted_at = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= interrupted_at < 4

    resumed = run_cli([*ARGS, f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'resumed'}"], tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = final_state(tmp_path / "straight"), final_state(tmp_path / "resumed")
    assert got["epoch"] == expected["epoch"] and got["global_step"] == expected["global_step"]
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), f"{key} differs after resume"
    for exp_opt, got_opt in zip(expected["optimizer_states"], got["optimizer_states"]):
        for pid, state in exp_opt["state"].items():
            assert torch.equal(state["exp_avg"], got_opt["state"][pid]["exp_avg"])
