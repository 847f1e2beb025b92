"""The commands as a user runs them: sweeps, DDP, sampling, bad inputs, and the installed package."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from gan_cli import cli
from gan_cli.commands.train import train
from gan_cli.errors import UserError
from tests.conftest import POOLED, QUICK, SMALL, compose_train, run_cli, translation_quick, unwrapped

ROOT = Path(__file__).resolve().parents[1]
TINY = [*QUICK, "logger=none"]
NO_DATA = [o for o in TINY if not o.startswith("data")]  # for runs that pick their own data=


def said(result: subprocess.CompletedProcess) -> str:
    """What the command printed on stderr, with line wrapping undone."""
    return unwrapped(result.stderr)


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of a tiny dcgan and a tiny cgan, trained in-process."""
    paths = {}
    for model in ("dcgan", "cgan"):
        run = tmp_path_factory.mktemp(model)
        train(compose_train(run, [*TINY, *SMALL[model], f"model={model}"]))
        paths[model] = run / "checkpoints" / "last.ckpt"
    return paths


@pytest.mark.slow
def test_multirun_sweep_runs_each_job_in_its_own_folder(tmp_path):
    result = run_cli(["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", *TINY, *SMALL["dcgan"],
                      "model.lr=1e-4,2e-4", "loss=lsgan,hinge", "optimized_metric=train/g_loss"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent.parent for p in (tmp_path / "sweep").glob("*/checkpoints/last.ckpt"))
    assert len(jobs) == 4
    overrides = {(p / ".hydra" / "overrides.yaml").read_text() for p in jobs}
    assert len(overrides) == 4 and all("loss=" in o and "model.lr=" in o for o in overrides)
    assert (tmp_path / "sweep" / "multirun.yaml").is_file()


@pytest.mark.slow
def test_cyclegan_sweep_and_ddp(tmp_path, image_pairs):
    quick = [*translation_quick("cyclegan", image_pairs), "logger=none", "data.batch_size=1"]
    sweep = run_cli(["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", *quick, "model.lambda_identity=0,0.5",
                     "optimized_metric=train/cycle_A"], tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert len(list((tmp_path / "sweep").glob("*/checkpoints/last.ckpt"))) == 2
    # DDP: the discriminators are frozen during the generators' update (unused parameters)
    ddp = run_cli(["strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *quick,
                   f"hydra.run.dir={tmp_path / 'ddp'}"], tmp_path, fresh=True)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "MEMBER: 2/2" in ddp.stdout + ddp.stderr
    checkpoint = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)
    # 6 image pairs over 2 processes at batch 1: 3 batches per process, so 3 fakes in each pool, kept per rank
    assert checkpoint["gan_cli"]["d_updates"] == 3
    pools = [rank["fake_A"]["images"] for rank in checkpoint["gan_cli"]["pools"]]
    assert [len(pool) for pool in pools] == [3, 3] and not torch.equal(*pools)  # each rank translated its share


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    result = run_cli(["strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *TINY, *SMALL["dcgan"],
                      *POOLED, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, fresh=True)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "distributed_backend=gloo" in output and "All distributed processes registered" in output
    assert "MEMBER: 2/2" in output
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    # 64 images over 2 processes at batch 16: 2 batches per process per epoch
    assert checkpoint["gan_cli"]["d_updates"] == 2
    assert list(tmp_path.glob("outputs")) == []  # the second rank wrote into the same run folder
    # the metrics' states were combined over both ranks: all 64 reference images and 32 samples compared
    protocol = json.loads((tmp_path / "run" / "checkpoints" / "metrics.json").read_text())[-1]["protocol"]
    assert protocol["ranks"] == 2 and protocol["reference"]["size"] == 64 and protocol["num_samples"] == 32


@pytest.mark.slow
def test_sample_writes_a_grid_or_one_file_per_sample(tmp_path, checkpoints, capsys):
    """A grid and a refused label through the installed gan-sample, the other cases in-process through the same
    Hydra task."""
    grid = run_cli([f"ckpt_path={checkpoints['dcgan']}", "num_samples=16", "output=grid.png"], tmp_path,
                   module="gan-sample", fresh=True)
    assert grid.returncode == 0, grid.stderr[-3000:]
    with Image.open(tmp_path / "grid.png") as image:
        assert image.size == (8 * 34 + 2, 2 * 34 + 2)  # 8 per row, 32 px images, 2 px padding
    bad = run_cli([f"ckpt_path={checkpoints['cgan']}", "label=12"], tmp_path, module="gan-sample")
    assert bad.returncode == 1 and "label" in said(bad)
    no_traceback(bad)

    def sample(*overrides: str) -> DictConfig:
        return compose_train(tmp_path / "unused", list(overrides), config_name="sample")

    cli._sample(sample(f"ckpt_path={checkpoints['dcgan']}", "num_samples=5", f"output={tmp_path / 'each'}/"))
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    cli._sample(sample(f"ckpt_path={checkpoints['cgan']}", "num_samples=8", "label=3", f"output={tmp_path}/three.png"))
    assert (tmp_path / "three.png").is_file()
    assert "label" in refused(cli._sample, sample(f"ckpt_path={checkpoints['dcgan']}", "label=1"), capsys)


def test_sample_in_process_draws_the_requested_label(checkpoints):
    from gan_cli.assembly import load_model

    model, config = load_model(checkpoints["cgan"])
    assert config["model"]["_target_"] == "gan_cli.models.gans.gan.GAN"
    torch.manual_seed(0)
    a = model.sample(4, torch.full((4,), 2))
    torch.manual_seed(0)
    b = model.sample(4, torch.full((4,), 7))
    assert a.shape == (4, 1, 32, 32) and not torch.allclose(a, b)


def refused(command, cfg: DictConfig, capsys) -> str:
    """The one paragraph `command` (a gan-cli command's Hydra task, run in-process on a composed config, through
    the same error handling as on the command line) prints as it exits with status 1."""
    with pytest.raises(SystemExit) as stopped:
        command(cfg)
    assert stopped.value.code == 1
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    return unwrapped(printed.err)


@pytest.mark.slow
def test_bad_inputs_get_a_clear_error_and_lose_nothing(tmp_path, checkpoints, capsys):
    """Two mistakes through the installed commands (one paragraph, no traceback), the others in-process through
    the same handler."""
    missing = run_cli([*NO_DATA, "data=image_folder", f"data.root={tmp_path / 'nowhere'}"], tmp_path)
    assert missing.returncode == 1 and str(tmp_path / "nowhere") in said(missing) and "data.root" in said(missing)
    sample_missing = run_cli([f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path, module="gan-sample")
    assert sample_missing.returncode == 1 and "missing.ckpt" in said(sample_missing)
    for result in (missing, sample_missing):
        no_traceback(result)

    def train_refuses(*overrides: str) -> str:
        return refused(cli._train, compose_train(tmp_path / "run", list(overrides)), capsys)

    images = tmp_path / "images"
    images.mkdir()
    for i in range(15):
        Image.new("RGB", (40, 40), (i * 10, 0, 0)).save(images / f"ok{i:02d}.png")
    (images / "broken.png").write_bytes(b"this is not a png")
    assert "broken.png" in train_refuses(*NO_DATA, *SMALL["dcgan"], "data=image_folder", f"data.root={images}",
                                         "data.num_workers=0", "data.image_size=32", "data.batch_size=16")
    assert "missing.ckpt" in train_refuses(*TINY, f"ckpt_path={tmp_path / 'missing.ckpt'}")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint")
    assert "not a readable gan-cli checkpoint" in train_refuses(*TINY, f"ckpt_path={garbage}")
    assert "metrics.classifier_ckpt is not set: metrics=digits needs a classifier checkpoint" in train_refuses(
        *TINY, "metrics=digits")
    before = checkpoints["dcgan"].read_bytes()
    assert "different model" in train_refuses(*TINY, *SMALL["gan"], "model=gan", f"ckpt_path={checkpoints['dcgan']}")
    assert checkpoints["dcgan"].read_bytes() == before


@pytest.mark.slow
def test_non_finite_loss_through_the_cli(tmp_path):
    result = run_cli([*TINY, *SMALL["gan"], "model=gan", "trainer.max_epochs=2",
                      "+callbacks.poison._target_=tests.helpers.PoisonWeights", "+callbacks.poison.at_batch=5",
                      f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert "non-finite" in said(result) and "step 5" in said(result)
    no_traceback(result)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


@pytest.mark.slow
def test_the_wheel_ships_the_configs_without_packaging_warnings(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                            "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, text=True)
    absent = [line for line in (built.stdout + built.stderr).splitlines() if "absent from the `packages`" in line]
    assert not absent, f"{len(absent)} config folders missing from pyproject's packages, e.g. {absent[0]}"
    (wheel,) = tmp_path.glob("gan_cli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"gan_cli/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped and shipped <= names
    assert "gan_cli/conf/train.yaml" in names and "gan_cli/conf/model/dcgan.yaml" in names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gan_cli").rglob("*.py")}
    assert modules <= names, f"packages missing from pyproject's list: {sorted(modules - names)}"


def test_gibbs_steps_is_refused_for_a_model_without_gibbs_chains(checkpoints):
    from gan_cli.commands.sample import sample

    settings = {"ckpt_path": str(checkpoints["dcgan"]), "seed": 0, "device": "cpu", "num_samples": 4,
                "output": "x.png", "label": None, "nrow": None, "chain": False, "gibbs_steps": 100}
    with pytest.raises(UserError, match=r"gibbs_steps= is for models that sample by Gibbs chains .* Leave gibbs_steps= out"):
        sample(OmegaConf.create(settings))


@pytest.mark.parametrize("override", ["loss=hinge", "loss.d_steps=2"])
def test_a_loss_for_a_model_without_an_adversarial_game_is_refused(make_cfg, override):
    from gan_cli.commands.train import build

    with pytest.raises(UserError, match=rf"model=classifier has no adversarial loss, so {override} would change nothing"):
        build(make_cfg("model=classifier", override, *QUICK[:3]))


@pytest.mark.slow
def test_a_run_says_where_it_writes_before_it_trains_and_its_tensorboard_command_works_as_typed(tmp_path):
    """Without the virtual environment on PATH (not activated), the printed command names the installed program."""
    import os
    import shlex

    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_dir)
    result = run_cli([*QUICK, *SMALL["dcgan"], "logger=tensorboard", "trainer.enable_progress_bar=true",
                      f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env={"PATH": path})
    assert result.returncode == 0, said(result)
    out = result.stdout
    assert out.index("Run folder:") < out.index("Epoch 0"), "the folder is told before the first step"
    command = next(line for line in out.splitlines() if "watch it:" in line).split("watch it:", 1)[1]
    program = shlex.split(command)[:-2]
    shown = subprocess.run([*program, "--version"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PATH": path})
    assert shown.returncode == 0 and shown.stdout.strip(), shown.stderr
