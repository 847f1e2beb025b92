"""Every adversarial model with every trick, a few steps on synthetic data: it trains with finite losses, or
refuses at once with an error naming the model and the trick. The refusals are listed, so that a model
losing (or gaining) a trick is noticed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gan_cli.commands.train import build
from gan_cli.errors import UserError
from tests.conftest import QUICK, SMALL, translation_quick
from tests.gpgan_helpers import gpgan_quick, write_scenes

TRICKS = ["feature_matching", "minibatch_discrimination", "historical_averaging", "label_smoothing",
          "virtual_batchnorm", "spectral_norm", "r1", "ema", "diffaugment", "unrolled", "ada"]
MODELS = ["gan", "dcgan", "cgan", "infogan", "lapgan", "ssgan", "sngan", "stylegan2", "pix2pix", "cyclegan", "gpgan"]

#: (model, trick) -> what the refusal says
REFUSED = {
    ("gan", "virtual_batchnorm"): "has none",          # the MLP generator has no batch norm
    ("cyclegan", "virtual_batchnorm"): "has none",     # instance norm
    ("pix2pix", "minibatch_discrimination"): "PatchGAN",
    ("cyclegan", "minibatch_discrimination"): "PatchGAN",
    ("cyclegan", "label_smoothing"): "LeastSquaresLoss",
    ("gpgan", "label_smoothing"): "WassersteinLoss",
    ("sngan", "label_smoothing"): "HingeLoss",
    ("stylegan2", "virtual_batchnorm"): "has none",    # no batch norm
}

#: tiny networks of the models not in conftest's SMALL
TINY = {
    "infogan": ["model.generator.ngf=4", "model.generator.fc=16", "model.discriminator.ndf=4", "model.discriminator.fc=16",
                "model.discriminator.q_hidden=8"],
    "lapgan": [],
    "ssgan": ["data.labels_per_class=2"],
    "sngan": ["model.generator.ngf=8", "model.discriminator.ndf=8", "loss.d_steps=1"],
    "stylegan2": ["model.preset=tiny", "model.latent_dim=32", "model.w_dim=32"],
}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("trick_matrix") / "scenes")


def overrides(model: str, trick: str, image_pairs: dict[str, Path], scenes: Path) -> list[str]:
    common = [f"tricks=[{trick}]", "trainer.max_epochs=1", "trainer.max_steps=2", "logger=none", "callbacks=none"]
    if model in ("pix2pix", "cyclegan"):
        return [*translation_quick(model, image_pairs), *common]
    if model == "gpgan":  # one critic and one G update in the first batch
        return [*gpgan_quick(scenes), "model.critic_boost=null", "loss.d_steps=1", *common]
    return [f"model={model}", *SMALL.get(model, TINY.get(model, [])), *QUICK, "data.image_size=16", *common]


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("model", MODELS)
def test_model_takes_trick(make_cfg, image_pairs, scenes, one_thread, model, trick):
    cfg = make_cfg(*overrides(model, trick, image_pairs, scenes))
    refusal = REFUSED.get((model, trick))
    if refusal:
        with pytest.raises(UserError, match=rf"model={model} cannot take tricks=\[{trick}\]: .*{refusal}"):
            build(cfg)
        return
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith(("d_loss", "g_loss"))}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert trainer.global_step > 0
