"""One run per folder: a second gan-train aimed at a folder in use stops at once, naming the first one, in one
paragraph; once the first has ended (even killed with SIGKILL), the folder is free again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_cli.config.run_folder import LOCK_FILE, hold_folder, secondary_rank
from gan_cli.errors import UserError
from tests.conftest import run_cli, start_cli

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
QUICK = ["data=fake", "data.dataset.size=32", "data.batch_size=16", "trainer=cpu", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "model.generator.ngf=4", "model.discriminator.ndf=4", "logger=none"]


def test_a_held_folder_is_refused_naming_the_holder(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", f"from gan_cli.config.run_folder import hold_folder; "
                               f"from pathlib import Path; import time; hold_folder(Path({str(folder)!r})); "
                               f"print('held', flush=True); time.sleep(60)"],
                              env={**os.environ, **ENV}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"Another gan-train \(PID {holder.pid}, started .*\) is writing into"):
            hold_folder(folder)
        monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP rank > 0 shares rank 0's folder
        assert secondary_rank()
        hold_folder(folder)
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.delenv("LOCAL_RANK")
    hold_folder(folder)  # the killed holder's lock went with it
    assert (folder / LOCK_FILE).read_text().startswith(f"PID {os.getpid()},")


@pytest.mark.slow
def test_a_second_gan_train_in_the_same_folder_stops_at_once(tmp_path):
    run = tmp_path / "run"
    first = start_cli([*QUICK, "model=dcgan", "trainer.max_epochs=30", f"hydra.run.dir={run}"], tmp_path, ENV)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (run / "checkpoints").exists():
            time.sleep(0.1)
        config = (run / ".hydra" / "config.yaml").read_text()
        second = run_cli([*QUICK, "model.lr=0.5", f"hydra.run.dir={run}"], tmp_path, env=ENV)
        assert second.returncode == 1
        said = " ".join(second.stderr.split())
        assert f"Another gan-train (PID {first.pid}," in said and "Traceback" not in said
        assert (run / ".hydra" / "config.yaml").read_text() == config  # the first run's record is untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    again = run_cli([*QUICK, f"hydra.run.dir={run}"], tmp_path, env=ENV)
    assert again.returncode == 0, again.stderr[-2000:]


def test_the_default_run_folder_is_locked_too(tmp_path):
    # the default folder's name is made of the model and data chosen (${hydra:runtime.choices.model})
    result = run_cli([*QUICK, f"paths.log_dir={tmp_path / 'logs'}"], tmp_path, env={"PYTHONWARNINGS": "default"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RunFolderLock" not in result.stderr
    locks = list((tmp_path / "logs").rglob(LOCK_FILE))
    assert [lock.parent.parent.name for lock in locks] == ["dcgan_fake"]
    assert (locks[0].parent / "checkpoints" / "last.ckpt").exists()  # the folder the run wrote into
