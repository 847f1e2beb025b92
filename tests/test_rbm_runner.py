"""model=rbm through the runner: bad settings named with their fix, bf16 mixed precision, the visible units'
coding; training logs its scores and draws filters and chains, gan-sample runs Gibbs chains of the asked length,
gan-eval reports the held-out scores, persistent chains and momentum survive a checkpoint, and
model.cd_batch_size splits a loaded batch into the same CD updates."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.models.classic.rbm_nets import RBMNet
from gan_cli.models.classic.rbm_shared import VisibleCoding, dataset_images, rbm_scores
from tests.conftest import POOLED, compose_train
from tests.helpers import refusal
from tests.rbm_helpers import TINY, snapshot


# --- settings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("model.k=0", r"model\.k=0: CD-k runs k Gibbs steps"),
    ("model.hidden=0", r"model\.hidden=0"),
    ("model.lr=0", r"model\.lr=0"),
    ("model.final_momentum=1.0", r"model\.final_momentum=1\.0: momentum must be in \[0, 1\)"),
    ("model.binarize=yes", r"model\.binarize='yes': choose one of none, threshold, sample"),
    ("model.reconstruction=mean", r"model\.reconstruction='mean'"),
    ("model.gibbs_steps=0", r"model\.gibbs_steps=0"),
])
def test_bad_settings_name_the_setting_and_the_fix(make_cfg, override, message):
    assert re.search(message, str(refusal(lambda: build(make_cfg(*TINY, override)))))


def test_trains_under_bf16_mixed_precision(make_cfg, one_thread):
    datamodule, model, trainer = build(make_cfg(*TINY, "model.persistent=true", "trainer.precision=bf16-mixed",
                                                "trainer.limit_train_batches=2", "trainer.limit_val_batches=0",
                                                "callbacks=none"))
    before = snapshot(model.rbm)
    trainer.fit(model, datamodule=datamodule)
    for p, p0 in zip(snapshot(model.rbm), before):
        assert p.dtype == torch.float32 and torch.isfinite(p).all() and not torch.equal(p, p0)


def test_an_adversarial_loss_is_refused(make_cfg):
    with pytest.raises(UserError, match="has no adversarial loss, so loss=hinge would change nothing"):
        build(make_cfg(*TINY, "loss=hinge"))


def test_visible_coding_maps_normalised_images_to_units_and_back():
    coding = VisibleCoding(1, 2, [0.5], [0.5], "threshold")
    images = torch.tensor([[-1.0, 0.2], [0.0, 1.0]]).view(1, 1, 2, 2)  # intensities 0, 0.6, 0.5, 1
    assert coding.unit(images)[0].tolist() == pytest.approx([0.0, 0.6, 0.5, 1.0])
    assert coding.visible(images, draw=True).tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert torch.allclose(coding.images(coding.unit(images)), images)
    torch.manual_seed(0)
    drawn = VisibleCoding(1, 2, [0.5], [0.5], "sample").visible(images.expand(4000, 1, 2, 2), draw=True)
    assert drawn.mean(0).tolist() == pytest.approx([0.0, 0.6, 0.5, 1.0], abs=0.03)


# --- through the runner ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two epochs of PCD on the synthetic images with quick metrics: the run folder and its logged metrics."""
    run = tmp_path_factory.mktemp("rbm")
    cfg = compose_train(run, [*TINY, "model.persistent=true", "trainer.max_epochs=2", *POOLED])
    return run, train(cfg)


def test_training_logs_the_scores_and_draws_filters_and_chains(trained):
    run, logged = trained
    for name in ("train/recon_error", "train/free_energy_difference", "val/pll", "val/recon_error",
                 "val/free_energy_gap", "train/pll", "metrics/fid"):
        assert name in logged and math.isfinite(logged[name]), name
    gap = logged["val/free_energy"] - logged["train/free_energy"]
    assert logged["val/free_energy_gap"] == pytest.approx(gap, rel=1e-5)
    assert -64 * math.log(2) < logged["val/pll"] < 0  # 64 binary units, better than fair coins
    for name in ("filters", "samples", "gibbs_chains"):
        assert (run / "samples" / f"{name}_epoch001.png").is_file()


def test_gan_sample_runs_gibbs_chains_of_the_asked_length(trained, tmp_path, monkeypatch):
    run, _ = trained
    lengths = []
    gibbs = RBMNet.gibbs
    monkeypatch.setattr(RBMNet, "gibbs", lambda self, v, steps: lengths.append(steps) or gibbs(self, v, steps))
    base = {"ckpt_path": str(run / "checkpoints" / "last.ckpt"), "seed": 0, "device": "cpu", "num_samples": 6,
            "label": None, "nrow": None, "chain": False}
    output = sample(OmegaConf.create(base | {"output": str(tmp_path / "grid.png"), "gibbs_steps": 7}))
    assert output.is_file() and lengths == [7]
    sample(OmegaConf.create(base | {"output": f"{tmp_path / 'each'}/", "gibbs_steps": None}))
    assert lengths == [7, 20] and len(list((tmp_path / "each").glob("*.png"))) == 6  # model.gibbs_steps by default
    with pytest.raises(UserError, match="gibbs_steps=0"):
        sample(OmegaConf.create(base | {"output": str(tmp_path / "x.png"), "gibbs_steps": 0}))


def test_gan_eval_reports_the_held_out_pll_reconstruction_error_and_free_energy_gap(trained, tmp_path):
    run, _ = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    record, _ = evaluate(compose_train(tmp_path, [f"ckpt_path={ckpt}", "num_samples=16"], config_name="eval"))
    scores = {name: score["mean"] for name, score in record["scores"].items()}
    assert {"fid", "pseudo_log_likelihood", "recon_error", "free_energy_gap"} <= scores.keys()
    from hydra.utils import instantiate

    from gan_cli.assembly import load_model

    model, config = load_model(ckpt)
    datamodule = instantiate(config["data"])
    held_out = rbm_scores(model.rbm, model.coding.visible(dataset_images(datamodule.build("test")), draw=False))
    train_part = rbm_scores(model.rbm, model.coding.visible(dataset_images(datamodule.build("train"), 32), draw=False))
    assert scores["pseudo_log_likelihood"] == pytest.approx(float(held_out["pll"].mean()), rel=1e-5)
    assert scores["recon_error"] == pytest.approx(float(held_out["recon_error"].mean()), rel=1e-5)
    gap = held_out["free_energy"].mean() - train_part["free_energy"].mean()
    assert scores["free_energy_gap"] == pytest.approx(float(gap), rel=1e-4, abs=1e-4)
    saved = json.loads(ckpt.with_name("last.eval.json").read_text())[-1]
    assert saved["protocol"]["model_kind"] == "generator"


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_persistent_chains_and_momentum_survive_a_checkpoint(tmp_path, one_thread):
    common = [*TINY, "model.persistent=true", "model.momentum_epochs=1", "callbacks=[rng_state,checkpoints]",
              "trainer.limit_val_batches=0"]
    train(compose_train(tmp_path / "whole", [*common, "trainer.max_epochs=2"]))
    train(compose_train(tmp_path / "cut", [*common, "trainer.max_epochs=1"]))
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert cut["state_dict"]["chains"].shape == (16, 16)  # the chains' hidden states
    assert bool(cut["state_dict"]["chains_started"])
    assert "momentum_buffer" in cut["optimizer_states"][0]["state"][0]
    train(compose_train(tmp_path / "resumed", [*common, "trainer.max_epochs=2",
                                               f"ckpt_path={tmp_path / 'cut' / 'checkpoints' / 'last.ckpt'}"]))
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert whole.keys() == resumed.keys() and not torch.equal(whole["chains"], cut["state_dict"]["chains"])
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.parametrize("persistent", [False, True])
def test_a_loaded_batch_split_into_cd_updates_makes_the_same_updates_as_loading_them_one_by_one(
        tmp_path, one_thread, persistent):
    """model.cd_batch_size=8 on loaded batches of 32 = 4 updates a training step, the very updates (same images,
    order and random draws) of loaded batches of 8; only Lightning's step count differs."""
    common = [*TINY, f"model.persistent={persistent}", "model.momentum_epochs=1", "trainer.max_epochs=2",
              "trainer.limit_val_batches=0", "callbacks=none", "model.cd_batch_size=8"]
    runs = {}
    for name, batch_size in (("one", 8), ("split", 32)):
        datamodule, model, trainer = build(compose_train(tmp_path / name, [*common, f"data.batch_size={batch_size}"]))
        trainer.fit(model, datamodule=datamodule)
        runs[name] = (trainer.global_step, model.state_dict())
    assert (runs["one"][0], runs["split"][0]) == (16, 4)
    for key, value in runs["one"][1].items():
        torch.testing.assert_close(runs["split"][1][key], value, msg=key)


def test_cd_batch_size_must_be_positive(make_cfg):
    with pytest.raises(InstantiationException, match="model.cd_batch_size=0"):
        build(make_cfg(*TINY, "model.cd_batch_size=0"))
