"""A signal never loses a run: SIGTERM, SIGUSR1 and Ctrl-C write a resumable checkpoint at the next step
boundary, print the command that resumes the run, and exit with 128 + the signal's number; the printed command
resumes it exactly. Under SLURM a SIGUSR1 also requeues the job, and the requeued job resumes by itself."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli, start_cli
from tests.prewarmed import Command

ROOT = Path(__file__).resolve().parents[1]
#: 4 batches an epoch of a tiny DCGAN, slowed down so that a signal lands in the middle of an epoch
ARGS = ["model=dcgan", "data=fake", "data.dataset.size=64", "data.batch_size=16", "trainer=cpu",
        "trainer.max_epochs=4", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "model.generator.ngf=4", "model.discriminator.ndf=4", "trainer.deterministic=true", "seed=7", "logger=none",
        "+callbacks.slow._target_=tests.helpers.SlowDown", "+callbacks.slow.seconds=0.3"]
ENV = {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}

pytestmark = pytest.mark.slow


def start(args: list[str], cwd: Path, env: dict | None = None, fresh: bool = False) -> subprocess.Popen | Command:
    return start_cli(args, cwd, {**ENV, **(env or {})}, fresh=fresh)


def signal_after_first_checkpoint(proc: subprocess.Popen | Command, run: Path, signum: int) -> tuple[int, str]:
    """Send `signum` a little after the run's first checkpoint (so in the middle of epoch 1); (exit status, output)."""
    last, deadline = run / "checkpoints" / "last.ckpt", time.time() + 120
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


def final_tensors(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 3
    tensors = {f"state_dict.{k}": v for k, v in checkpoint["state_dict"].items()}
    for i, opt in enumerate(checkpoint["optimizer_states"]):
        for pid, state in opt["state"].items():
            tensors |= {f"optimizer{i}.{pid}.{k}": v for k, v in state.items()}
    return tensors


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[str, torch.Tensor]:
    root = tmp_path_factory.mktemp("straight")
    result = run_cli([*ARGS, f"hydra.run.dir={root / 'run'}"], root, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return final_tensors(root / "run")


def resume_with_the_printed_command(output: str, cwd: Path, run: Path, fresh: bool = False) -> dict[str, torch.Tensor]:
    command = re.search(r"^  (gan-train .*)$", output, flags=re.MULTILINE).group(1)
    args = shlex.split(command)[1:]
    result = run_cli([*args, f"hydra.run.dir={run}"], cwd, env=ENV, fresh=fresh)
    assert result.returncode == 0, result.stderr[-3000:]
    return final_tensors(run)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_and_the_printed_command_resumes_exactly(tmp_path, straight, signum):
    run = tmp_path / "run"
    status, output = signal_after_first_checkpoint(start([*ARGS, f"hydra.run.dir={run}"], tmp_path), run, signum)
    assert status == 128 + signum, output[-3000:]
    assert f"Stopped by {signal.Signals(signum).name} after training step" in output and "Traceback" not in output
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert stopped["epoch"] == 1 and 8 < stopped["global_step"] < 16  # in the middle of epoch 1
    resumed = resume_with_the_printed_command(output, tmp_path, tmp_path / "resumed")
    assert resumed.keys() == straight.keys()
    different = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:3]}"


def test_under_slurm_sigusr1_requeues_the_job_and_the_requeued_job_resumes_in_its_folder(tmp_path, straight):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    scontrol.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "gan", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = tmp_path / "run"
    status, output = signal_after_first_checkpoint(start([*ARGS, f"hydra.run.dir={run}"], tmp_path, slurm), run,
                                                   signal.SIGUSR1)
    assert status == 128 + signal.SIGUSR1, output[-3000:]
    assert calls.read_text().split() == ["requeue", "4242"] and "SLURM requeued the job" in " ".join(output.split())
    # SLURM starts the same command again, with SLURM_RESTART_COUNT set: it resumes from its own last.ckpt
    again = run_cli([*ARGS, f"hydra.run.dir={run}"], tmp_path, env={**ENV, **slurm, "SLURM_RESTART_COUNT": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout + again.stderr
    resumed = final_tensors(run)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


DDP = [*ARGS, "strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.log_every_n_steps=1"]


def test_under_ddp_a_signal_to_one_rank_stops_every_rank_at_the_same_step_and_resumes_exactly(tmp_path):
    # 64 images over 2 ranks: 2 batches an epoch each; the signal reaches rank 0 alone (its children are the
    # other ranks), which has to tell rank 1
    result = run_cli([*DDP, f"hydra.run.dir={tmp_path / 'straight'}"], tmp_path, env=ENV, fresh=True)
    assert result.returncode == 0, result.stderr[-3000:]
    straight = final_tensors(tmp_path / "straight")
    run = tmp_path / "run"
    status, output = signal_after_first_checkpoint(start([*DDP, f"hydra.run.dir={run}"], tmp_path, fresh=True), run,
                                                   signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, output[-3000:]
    assert "Stopped by SIGTERM after training step" in output and "Traceback" not in output
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert stopped["epoch"] < 3
    resumed = resume_with_the_printed_command(output, tmp_path, tmp_path / "resumed", fresh=True)
    different = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:3]}"
