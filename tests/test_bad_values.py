"""Bad values are refused before any work, each in one paragraph naming the key, the value and a fix: numbers
out of the range their type hints declare (found for every config node from what it builds), runs that would
train nothing, a data folder with a file that is not an image, a run folder that cannot be written, a full disk
(the last good checkpoint stays intact), a mistyped group name; printed paths can be pasted back as they are."""

from __future__ import annotations

import errno
import shlex
from pathlib import Path

import pytest
import torch

from gan_cli.commands.train import build, train
from gan_cli.config.run_folder import hold_folder
from gan_cli.config.schemas import validate_targets
from gan_cli.errors import UserError
from tests.conftest import QUICK, SMALL, run_cli


@pytest.mark.parametrize("overrides, refused", [
    (["data.batch_size=0"], "data.batch_size=0: must be greater than 0"),
    (["data.num_workers=-1"], "data.num_workers=-1: must be at least 0"),
    (["data.image_size=0"], "data.image_size=0: must be greater than 0"),
    (["model.lr=-0.1"], "model.lr=-0.1: must be greater than 0"),
    (["model.d_lr=0"], "model.d_lr=0: must be greater than 0"),
    (["model.optimizer.betas=[0.5,1.5]"], "model.optimizer.betas=[0.5, 1.5]: each value must be at least 0 and "
                                          "less than 1"),
    (["loss.d_steps=0"], "loss.d_steps=0: must be greater than 0"),
    (["loss=wgan_gp", "loss.gp_weight=-10"], "loss.gp_weight=-10: must be at least 0"),
    (["model=cyclegan", "model.lambda_A=-1"], "model.lambda_A=-1: must be at least 0"),
    (["model=cyclegan", "model.pool_size=-5"], "model.pool_size=-5: must be at least 0"),
    (["tricks=[ema]", "tricks.ema.decay=1.5"], "tricks.ema.decay=1.5: must be at least 0 and less than 1"),
    (["model=vae", "model.kl_weight=-1"], "model.kl_weight=-1: must be at least 0"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: a run of 0 epochs trains nothing"),
    (["trainer.max_steps=0"], "trainer.max_steps=0: a run of 0 steps trains nothing"),
    (["trainer.log_every_n_steps=-3"], "trainer.log_every_n_steps=-3: must be at least 0"),
])
def test_an_out_of_range_number_is_named_with_its_range(make_cfg, overrides, refused):
    with pytest.raises(UserError) as caught:
        validate_targets(make_cfg(*overrides))
    assert refused in str(caught.value)


def test_in_range_values_and_no_limit_pass(make_cfg):
    validate_targets(make_cfg("trainer.max_epochs=-1", "data.num_workers=0", "model.optimizer.betas=[0.0,0.99]"))


@pytest.mark.slow
def test_through_the_command_line_one_paragraph_and_no_traceback(tmp_path):
    result = run_cli(["data.batch_size=0", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    said = " ".join(result.stderr.split())
    assert result.returncode == 1 and "data.batch_size=0: must be greater than 0" in said
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was built, nothing trained
    typo = run_cli(["modle=dcgan"], tmp_path)
    said = " ".join(typo.stderr.split())
    assert typo.returncode == 1 and "no config group or key named 'modle'" in said and "Did you mean model=?" in said
    assert "+modle" not in said.replace("+NAME=VALUE", "") and "Traceback" not in typo.stderr


def test_a_folder_with_a_file_that_is_not_an_image_is_refused_at_once(make_cfg, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):  # the stray file sorts last: far beyond the first batch
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i:03d}.png")
    (folder / "zz_notes.png").write_text("not an image")
    cfg = make_cfg("data=image_folder", f"data.root={folder}", "data.batch_size=4", *QUICK[3:])
    with pytest.raises(Exception) as caught:
        datamodule, _, _ = build(cfg)
        datamodule.setup("fit")
    error = caught.value.__cause__ if not isinstance(caught.value, UserError) else caught.value
    assert isinstance(error, UserError) and "zz_notes.png is not an image" in str(error)


def test_a_run_folder_that_cannot_be_written_is_named():
    with pytest.raises(UserError, match=r"cannot write into the run folder /proc/gan-cli-run .*paths\.log_dir=DIR"):
        hold_folder(Path("/proc/gan-cli-run"))


def test_a_full_disk_names_the_path_and_the_free_space_and_keeps_the_last_checkpoint(make_cfg, monkeypatch):
    import gan_cli.checkpoint as checkpoint_module

    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "trainer.max_epochs=3", "logger=none")
    real_save, saves = torch.save, []

    def save_until_full(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) > 1:  # the disk fills up after the first checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_until_full)
    with pytest.raises(UserError) as caught:
        train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    message = " ".join(str(caught.value).split())
    assert f"The checkpoint {last} could not be written (No space left on device;" in message
    assert "MiB free on its disk" in message and f"resume from it (ckpt_path={last})" in message
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the first one, intact
    assert not list(last.parent.glob(".*.tmp"))  # no half-written file left


def test_printed_paths_with_spaces_and_accents_paste_back(make_cfg, tmp_path, capsys):
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "logger=none")
    cfg.paths.output_dir = str(tmp_path / "my runs" / "été")
    cfg.trainer.default_root_dir = cfg.paths.output_dir
    cfg.callbacks.last_checkpoint.dirpath = f"{cfg.paths.output_dir}/checkpoints"
    cfg.callbacks.periodic_checkpoint.dirpath = f"{cfg.paths.output_dir}/checkpoints"
    train(cfg)
    line = next(line for line in capsys.readouterr().out.splitlines() if "resume:" in line)
    pasted = shlex.split(line.split("(resume: ", 1)[1].rstrip(")"))
    assert pasted == [f"ckpt_path={tmp_path / 'my runs' / 'été' / 'checkpoints' / 'last.ckpt'}"]
