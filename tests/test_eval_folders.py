"""gan-eval on any images: a folder against a folder or a dataset's split, with FID, KID and precision/recall/density/
coverage; the real images' features cached under a key of their protocol and reused (a changed folder is not);
and the cache of a checkpoint's evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.evaluate_folders import evaluate_folders
from gan_cli.commands.train import train
from gan_cli.visuals import save_each
from tests.conftest import QUICK, SMALL, compose_train, run_cli
from tests.helpers import refusal

#: FID, KID and prdc in the features of 2x2 average pooling: cheap, no downloaded weights
POOLING = ["metrics=custom", "metrics.feature_net.network._target_=torch.nn.AdaptiveAvgPool2d",
           "+metrics.feature_net.network.output_size=2", "metrics.scores=[fid,kid,prdc]", "metrics.kid_subset_size=10"]


def write_patterns(folder: Path, count: int, brightness: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        coarse = np.clip(rng.normal(brightness, 40, (8, 8, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(coarse).resize((32, 32), Image.BICUBIC).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    return {"real": write_patterns(tmp_path / "real", 40, 128, 0),
            "like": write_patterns(tmp_path / "like", 40, 128, 1),
            "unlike": write_patterns(tmp_path / "unlike", 40, 200, 2)}


def scored(make_cfg, tmp_path, *settings: str) -> dict:
    record, _ = evaluate_folders(make_cfg(*POOLING, f"cache_dir={tmp_path / 'cache'}", *settings, config_name="eval"))
    return record


def test_a_folder_like_the_real_one_scores_better_than_an_unlike_one(make_cfg, tmp_path, folders):
    like = scored(make_cfg, tmp_path, f"fake={folders['like']}", f"real={folders['real']}")
    unlike = scored(make_cfg, tmp_path, f"fake={folders['unlike']}", f"real={folders['real']}")
    assert like["scores"]["fid"] < unlike["scores"]["fid"] and like["scores"]["kid_mean"] < unlike["scores"]["kid_mean"]
    assert like["scores"]["recall"] > unlike["scores"]["recall"] and unlike["scores"]["precision"] < 0.5
    assert like["protocol"]["prdc"]["nearest_k"] == 5 and like["protocol"]["reference"]["count"] == 40
    written = json.loads(Path(f"{folders['like']}.eval.json").read_text())  # beside the folder
    assert written[-1]["scores"] == like["scores"]


def test_the_real_features_are_cached_under_their_protocol_and_a_changed_folder_is_computed_anew(
        make_cfg, tmp_path, folders):
    settings = (f"fake={folders['like']}", f"real={folders['real']}")
    first, again = scored(make_cfg, tmp_path, *settings), scored(make_cfg, tmp_path, *settings)
    assert not first["protocol"]["reference_cached"] and again["protocol"]["reference_cached"]
    assert again["scores"] == first["scores"]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    write_patterns(tmp_path / "more", 1, 128, 9)
    (tmp_path / "more" / "000.png").rename(folders["real"] / "extra.png")
    changed = scored(make_cfg, tmp_path, *settings)
    assert not changed["protocol"]["reference_cached"] and changed["protocol"]["reference"]["count"] == 41


def test_a_folder_against_a_dataset_split(make_cfg, tmp_path):
    """The test split written as PNGs and scored against itself: the same images, prdc all 1."""
    cfg = make_cfg("data=fake", "data.dataset.size=40", "data.channels=3", "data.mean=[0.5,0.5,0.5]",
                   "data.std=[0.5,0.5,0.5]", config_name="train")
    datamodule = instantiate(cfg.data)
    test = datamodule.build("test")
    images = [test[i]["image"] for i in range(len(test))]
    save_each(torch.stack(images), tmp_path / "written", datamodule.mean, datamodule.std)
    record = scored(make_cfg, tmp_path, f"fake={tmp_path / 'written'}", "real=test", "data=fake",
                    "data.dataset.size=40", "data.channels=3", "data.mean=[0.5,0.5,0.5]", "data.std=[0.5,0.5,0.5]")
    assert record["scores"]["fid"] < 1e-3 and record["scores"]["recall"] == 1.0 and record["scores"]["coverage"] == 1.0
    assert record["protocol"]["reference"]["source"]["split"] == "test"


@pytest.mark.parametrize("settings, named", [
    (["fake=FOLDER"], "needs real="),
    (["fake=FOLDER", "real=test"], "choose the dataset with data="),
    (["fake=nowhere", "real=FOLDER"], "is not a folder of images"),
])
def test_bad_folder_settings_are_named(make_cfg, tmp_path, folders, settings, named):
    settings = [s.replace("FOLDER", str(folders["real"])) for s in settings]
    assert named in str(refusal(lambda: scored(make_cfg, tmp_path, *settings)))


@pytest.mark.slow
def test_the_command_takes_a_checkpoint_or_a_folder_not_both(tmp_path, folders):
    both = run_cli(["ckpt_path=x.ckpt", f"fake={folders['like']}"], tmp_path, module="gan-eval")
    assert both.returncode == 1 and "give one of ckpt_path= and fake=" in both.stderr
    folder = run_cli([f"fake={folders['like']}", f"real={folders['real']}", *POOLING, f"cache_dir={tmp_path / 'c'}"],
                     tmp_path, module="gan-eval")
    assert folder.returncode == 0, folder.stderr[-2000:]
    assert "precision" in folder.stdout and "Scores and protocol appended" in folder.stdout


def test_a_checkpoint_evaluation_reuses_the_cached_reference(make_cfg, tmp_path):
    run = tmp_path / "dcgan"
    train(compose_train(run, [*QUICK, *SMALL["dcgan"], "logger=none"]))
    cfg = make_cfg(f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", *POOLING, "metrics.num_samples=32",
                   f"cache_dir={tmp_path / 'cache'}", f"output={tmp_path / 'record.json'}", config_name="eval")
    first, _ = evaluate(cfg)
    again, _ = evaluate(cfg)
    assert not first["protocol"]["reference"]["cached"] and again["protocol"]["reference"]["cached"]
    assert again["scores"]["fid"] == first["scores"]["fid"]
