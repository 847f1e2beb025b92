"""Config composition and validation: every choice composes, and a user's mistake is named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from gan_cli.config.schemas import validate_targets
from gan_cli.errors import UserError
from gan_cli.models.contract import TextSampler
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TRANSLATION_MODELS = ["cyclegan", "pix2pix", "direct_translation", "unit"]  # test_translation_models.py, test_unit.py, ...
CLASSIFIERS = ["classifier", "capsnet", "dbn"]  # tested in test_classifier.py, test_capsnet.py, test_dbn.py
NOT_SAMPLERS = ["autoencoder", "gpgan"]  # draw nothing from noise: tested in test_autoencoder.py, test_gpgan.py


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_option_the_resolved_config_snapshot_leaves_out_composes_and_validates(make_cfg):
    """tests/test_resolved_configs.py composes every option of every group and checks its targets against their
    signatures; the options whose values depend on the machine are left out of its snapshot, so they are checked
    here."""
    snapshot = json.loads((ROOT / "tools" / "resolved_configs.json").read_text())["configs"]
    groups = ["model", "loss", "data", "strategy", "trainer", "logger", "callbacks", "debug", "experiment", "tricks"]
    assert all(options(group) for group in groups)
    left_out = [f"{group}={option}" for group in groups for option in options(group)
                if f"{group}={option}" not in snapshot]
    assert left_out == ["logger=many", "logger=mlflow", "logger=wandb"]
    for choice in left_out:
        validate_targets(make_cfg(choice))


#: the models that sample by Gibbs chains draw the shapes checked below as well from short chains (the default's
#: 1,000 steps take 20 s for a 64 px RGB RBM here)
SHORT_CHAINS = {"rbm": ["model.gibbs_steps=5"]}


@pytest.mark.parametrize("model", sorted(set(options("model")) - set(TRANSLATION_MODELS) - set(CLASSIFIERS) - set(NOT_SAMPLERS)))
def test_every_noise_to_image_model_builds_for_the_data_it_is_given(make_cfg, model):
    for data, channels, size in [("fake", 1, 32), ("fake", 3, 64)]:
        cfg = make_cfg(f"model={model}", f"data={data}", f"data.channels={channels}", f"data.image_size={size}",
                       *SHORT_CHAINS.get(model, []))
        module = instantiate(cfg.model)
        text = {"text": torch.randn(2, cfg.text_encoder.dim)} if isinstance(module, TextSampler) else {}
        images = module.sample(2, **text)
        assert images.shape == (2, channels, size, size)


def test_strategy_is_merged_into_the_trainer(make_cfg):
    assert make_cfg().trainer.strategy == "auto"
    assert make_cfg("strategy=ddp").trainer.strategy == "ddp_find_unused_parameters_true"
    assert make_cfg("strategy=ddp_spawn").trainer.strategy == "ddp_spawn_find_unused_parameters_true"


def test_model_takes_the_chosen_loss(make_cfg):
    cfg = make_cfg("model=cgan", "loss=wgan_gp", "loss.d_steps=3")
    module = instantiate(cfg.model)
    assert type(module.loss).__name__ == "WassersteinGPLoss" and module.loss.d_steps == 3


def test_defaults_are_the_documented_default_job():
    # composed as gan-train composes it with no arguments (make_cfg puts the suite's model=dcgan first)
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="gan_cli.conf"):
        cfg = compose("train")
    # the README's default job: the class-conditional cgan with DCGAN's networks, 15 epochs of mnist_5k at 32 px
    assert cfg.model.conditional and cfg.model.generator._target_.endswith("DCGANGenerator")
    assert cfg.model.generator.num_classes == cfg.data.num_classes == 10
    assert cfg.data.dataset._target_.endswith("MNIST5k") and cfg.data.image_size == 32
    assert cfg.loss._target_.endswith("NonSaturatingLoss") and cfg.trainer.max_epochs == 15
    assert not cfg.get("tricks")


@pytest.mark.parametrize("override, named", [
    ("model.lr=abc", "model.lr"),
    ("+model.lrr=0.1", "model.lrr"),
    ("+model.generator.ngff=32", "model.generator.ngff"),
    ("model.generator.ngf=1.5", "model.generator.ngf"),
    ("trainer.max_epochs=many", "trainer.max_epochs"),
    ("+trainer.max_epoch=3", "trainer.max_epoch"),
    ("data.batch_size=big", "data.batch_size"),
    ("loss.d_steps=two", "loss.d_steps"),
])
def test_a_wrong_value_or_unknown_key_is_named(make_cfg, override, named):
    cfg = make_cfg(override)
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        validate_targets(cfg)


def test_a_wrong_top_level_type_fails_while_composing(make_cfg):
    with pytest.raises(ConfigCompositionException):
        make_cfg("seed=abc")
    with pytest.raises(ConfigCompositionException):
        make_cfg("model.lrr=0.1")  # not in the config: Hydra says to use +


def test_a_missing_required_value_is_named(make_cfg):
    cfg = make_cfg("data=image_folder")
    with pytest.raises(UserError, match=r"data\.root"):
        validate_targets(cfg)


@pytest.mark.slow
def test_cli_mistakes_get_a_message_and_no_traceback(tmp_path):
    unknown_choice = run_cli(["model=stylegan"], tmp_path)
    assert unknown_choice.returncode == 1
    assert "Could not find 'model/stylegan'" in unknown_choice.stderr
    assert "Available options in 'model'" in unknown_choice.stderr and "dcgan" in unknown_choice.stderr
    bad_type = run_cli(["model.lr=abc", "data=fake"], tmp_path)
    assert bad_type.returncode == 1
    assert "model.lr" in bad_type.stderr
    for result in (unknown_choice, bad_type):
        assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs" / "train").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))


@pytest.mark.slow
def test_cli_help_lists_groups_and_cfg_job_prints_the_config(tmp_path):
    help_text = run_cli(["--help"], tmp_path, module="gan-train")
    assert help_text.returncode == 0
    conf = Path(__file__).resolve().parent.parent / "conf"
    groups = ("model", "model/coder", "model/perceptual", "text_encoder", "tricks", "loss", "strategy", "trainer")
    for group in groups:  # every option of the group, in order
        line = f"{group}: " + ", ".join(sorted(path.stem for path in (conf / group).glob("*.yaml")))
        assert line in help_text.stdout
    job = run_cli(["--cfg", "job", "model=cgan", "loss=hinge"], tmp_path)
    assert job.returncode == 0
    assert "gan_cli.models.gans.gan.GAN" in job.stdout and "gan_cli.losses.HingeLoss" in job.stdout
    assert "num_classes: ${data.num_classes}" in job.stdout
    for command in ("gan-sample", "gan-translate"):
        assert f"Usage: {command} ckpt_path=PATH" in run_cli(["--help"], tmp_path, module=command).stdout
    info = run_cli(["--info", "searchpath"], tmp_path, module="gan-train")
    assert "pkg://gan_cli.conf" in info.stdout
