"""Shared fixtures: compose the real gan-train config in-process, as the CLI does, with outputs in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from gan_cli.config.schemas import register_schemas
from tests.prewarmed import Command

register_schemas()

#: tiny networks for each model, so a training step takes milliseconds on a CPU
SMALL = {
    "gan": ["model.generator.hidden=[32]", "model.discriminator.hidden=[16]"],
    "cgan": ["model.generator.ngf=4", "model.discriminator.ndf=4"],
    "dcgan": ["model.generator.ngf=4", "model.discriminator.ndf=4"],
    "cyclegan": ["model.generator.ngf=4", "model.generator.n_blocks=1", "model.discriminator.ndf=4"],
    "pix2pix": ["model.generator.ngf=4", "model.discriminator.ndf=4"],
}
#: a quick CPU run on the synthetic data
QUICK = ["data=fake", "data.dataset.size=64", "data.batch_size=16", "trainer=cpu", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1"]
#: metrics on: FID/KID on 2x2 average-pooled pixels, a cheap feature network named by a _target_ as a user
#: names theirs
POOLED = ["metrics=custom", "metrics.feature_net.network._target_=torch.nn.AdaptiveAvgPool2d",
          "+metrics.feature_net.network.output_size=2", "metrics.num_samples=32", "metrics.batch_size=16",
          "metrics.kid_subset_size=8"]

#: the data layout each translation model trains on
LAYOUT = {"cyclegan": "unpaired", "pix2pix": "paired"}


def translation_quick(model: str, folders: dict[str, Path]) -> list[str]:
    """A quick CPU run of a translation model on the tiny folders of the `image_pairs` fixture (3 batches)."""
    layout = LAYOUT[model]
    return [f"model={model}", *SMALL[model], f"data={layout}_folder", f"data.root={folders[layout]}",
            "data.crop_size=32", "data.batch_size=2", "data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1"]


def unwrapped(text: str) -> str:
    """`text` with its line wrapping undone (gan-cli wraps its paragraphs to the terminal's width, and a long path
    moves the breaks)."""
    return " ".join(text.split())


def write_image_pairs(root: Path, count: int = 6, size: int = 40) -> dict[str, Path]:
    """Tiny datasets in both layouts: unpaired trainA/ trainB/ testA/ testB/, and paired train/ test/ with
    A and B side by side (B is A with inverted colours)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    unpaired, paired = root / "unpaired", root / "paired"
    for split in ("train", "test"):
        (paired / split).mkdir(parents=True)
        for i in range(count):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(paired / split / f"{i}.png")
        for domain in "AB":
            (unpaired / f"{split}{domain}").mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(image).save(unpaired / f"{split}{domain}" / f"{domain.lower()}{i}.png")
    return {"unpaired": unpaired, "paired": paired}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most slow tests first, each file's tests in their order: `make test`'s workers take a file at
    a time, and a long file taken last would keep one worker busy while the others have nothing left."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture(scope="session")
def image_pairs(tmp_path_factory) -> dict[str, Path]:
    return write_image_pairs(tmp_path_factory.mktemp("image_pairs"))


#: the model of a test's gan-train config when the test names none: DCGAN, which the suite's tiny settings (SMALL,
#: QUICK on unlabelled data) are written for; the product's default job (conf/train.yaml) is tested on its own
TEST_MODEL = "model=dcgan"


def with_test_model(overrides: list[str]) -> list[str]:
    """`overrides` with model=dcgan last, unless they pick a model themselves (model=..., or an experiment, which
    picks its own); last, because a command line's options (-m, --cfg) cannot follow its overrides."""
    if any(o.lstrip("+~").startswith(("model=", "experiment=")) for o in overrides):
        return overrides
    return [*overrides, TEST_MODEL]


def compose_train(output_dir: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config gan-train would run with these overrides (model=dcgan unless they pick a model), writing into
    output_dir."""
    GlobalHydra.instance().clear()
    if config_name == "train":
        overrides = with_test_model(list(overrides))
    with initialize_config_module(version_base="1.3", config_module="gan_cli.conf"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        if "paths" in cfg:
            cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory) -> Path:
    """A random-weight InceptionV3 weights file: the metrics' plumbing needs no downloaded weights."""
    from tests.helpers import random_inception_weights

    return random_inception_weights(tmp_path_factory.mktemp("inception") / "weights-inception-random.pth")


def shared_by_workers(tmp_path_factory) -> Path:
    """A folder of this test session that every pytest-xdist worker sees (each worker has its own temporary
    folder under it), so that a costly session fixture is made once, not once per worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def digit_classifier(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """gan-train model=classifier data=mnist_5k for 2 epochs (the default run has 15), its convolutions half as
    wide as the default's (half the time, 0.97 held-out accuracy all the same): its run folder and the metrics it
    logged. The offline evaluator of the metrics tests; trained once per session, by the first worker
    that needs it."""
    from filelock import FileLock

    from gan_cli.commands.train import train

    folder = shared_by_workers(tmp_path_factory) / "digit_classifier"
    run, logged = folder / "run", folder / "metrics.json"
    folder.mkdir(exist_ok=True)
    with FileLock(folder / "lock"):
        if not logged.exists():
            cfg = compose_train(run, ["model=classifier", "model.network.widths=[16,32,64,128]", "data=mnist_5k",
                                      "trainer=cpu", "trainer.max_epochs=2",
                                      "logger=none", "trainer.enable_progress_bar=false",
                                      "trainer.enable_model_summary=false"])
            logged.write_text(json.dumps(train(cfg)))
    return run, json.loads(logged.read_text())


@pytest.fixture
def one_thread():
    """Tiny networks train several times faster on one thread (and do not fight other jobs for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_cfg(tmp_path):
    def _make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_train(tmp_path / "run", list(overrides), config_name)

    yield _make
    GlobalHydra.instance().clear()


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None, module: str = "gan_cli",
            fresh: bool = False) -> subprocess.CompletedProcess:
    """Run a command as a user would (python -m gan_cli ... or a console script), in cwd, as start_cli starts it;
    gan-train with model=dcgan unless `args` pick a model."""
    if module in ("gan_cli", "gan-train"):
        args = with_test_model(list(args))
    command = start_cli(args, cwd, env, module, fresh)
    try:
        out, err = command.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        command.kill()
        raise
    return subprocess.CompletedProcess(command.args, command.returncode, out, err)


def start_cli(args: list[str], cwd: Path, env: dict | None = None, module: str = "gan_cli",
              fresh: bool = False) -> Command | subprocess.Popen:
    """Start a command in a process of its own, forked from one that has imported gan-cli already
    (tests/prewarmed.py), or with `fresh` in a new interpreter, and return at once."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    if not fresh:
        return Command(list(args), cwd, full_env, module)
    program = [sys.executable, "-m", "gan_cli"] if module == "gan_cli" else [str(Path(sys.executable).parent / module)]
    return subprocess.Popen([*program, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
