"""model=direct_translation (one generator A -> B, a discriminator on B, a perceptual constraint) and the
perceptual term in CycleGAN: objectives term by term, training on tiny folders with VGG (random local weights)
or the digit classifier as the frozen network, gan-translate on the checkpoint, and an exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli.commands.train import build, train
from gan_cli.commands.translate import translate
from gan_cli.errors import UserError
from gan_cli.losses import LeastSquaresLoss
from gan_cli.losses.perceptual import PerceptualLoss
from gan_cli.models.translation.direct_translation import DirectTranslation
from tests.conftest import compose_train, translation_quick
from tests.helpers import resumed_and_uninterrupted, same_state
from tests.test_perceptual import known_net, random_vgg_weights
from tests.test_translation_models import Constant, Shift, adam

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    return random_vgg_weights(tmp_path_factory.mktemp("vgg") / "vgg16-random.pth")


def unpaired_run(model: str, image_pairs) -> list[str]:
    """A 3-batch CPU run of `model` on the tiny unpaired folders, with CycleGAN's tiny networks."""
    return [arg if arg != "model=cyclegan" else f"model={model}" for arg in translation_quick("cyclegan", image_pairs)]


def quick(model: str, image_pairs, vgg_file, *extra: str) -> list[str]:
    """unpaired_run with the perceptual term through random VGG16 weights."""
    return [*unpaired_run(model, image_pairs), "model/perceptual=vgg", f"model.perceptual.weights_path={vgg_file}",
            "model.perceptual.layers=[relu1_2,relu2_2]", *extra]


def test_objective_is_adversarial_plus_perceptual_plus_optional_identity():
    perceptual = PerceptualLoss(known_net(3.0), layers=["conv"], weight=0.5, mean=[0.5], std=[0.5])
    model = DirectTranslation(generator=lambda: Shift(0.2), discriminator=lambda: Constant(1.0),
                              loss=LeastSquaresLoss(), optimizer=adam, perceptual=perceptual, lambda_identity=2.0)
    real_A, real_B = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    terms, fake_B = model.generator_terms(real_A, real_B)
    assert torch.allclose(fake_B, real_A + 0.2) and torch.allclose(model.D.seen[-1], fake_B)  # D judges G(a)
    # conv: 3u - 1 on u = (x + 1) / 2, so the features of a and a + 0.2 differ by 0.3 everywhere
    assert {k: round(v.item(), 5) for k, v in terms.items()} == pytest.approx(
        {"G_GAN": 0.0, "perc": 0.5 * 0.3 ** 2, "idt": 2.0 * 0.2})  # D says "real" everywhere: no LSGAN loss
    assert model.GENERATORS == {"AtoB": "G"}


def test_it_refuses_to_run_without_the_perceptual_term_and_defaults_follow_cyclegan(make_cfg):
    with pytest.raises(UserError, match="needs its perceptual term.*model/perceptual=vgg"):
        DirectTranslation(generator=lambda: Shift(0.2), discriminator=lambda: Constant(1.0), loss=LeastSquaresLoss(),
                          optimizer=adam, perceptual=None)
    cfg = make_cfg("model=direct_translation")
    assert cfg.model.perceptual._target_.endswith("vgg_perceptual") and cfg.model.perceptual.arch == "vgg16"
    assert cfg.loss._target_.endswith("LeastSquaresLoss") and cfg.data.dataset.name == "horse2zebra"
    assert cfg.model.generator.n_blocks == 9 and cfg.model.pool_size == 50 and cfg.trainer.max_epochs == 200
    assert make_cfg("model=cyclegan").model.perceptual is None


def test_direct_translation_trains_keeps_the_feature_net_frozen_and_translates(make_cfg, image_pairs, vgg16_file,
                                                                              tmp_path):
    cfg = make_cfg(*quick("direct_translation", image_pairs, vgg16_file, "model.lambda_identity=1.0",
                          "callbacks.sample_grid.every_n_batches=0"))
    datamodule, module, trainer = build(cfg)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ["G_GAN", "perc", "idt", "D", "g_loss", "d_loss", "grad_norm_G"]:
        assert math.isfinite(float(metrics[f"train/{name}"])), name
    assert float(metrics["train/perc"]) > 0
    now = module.state_dict()
    for net in ("G", "D"):
        assert any(not torch.equal(before[k], now[k]) for k in before if k.startswith(f"{net}.")), f"{net} unchanged"
    saved = torch.load(vgg16_file, weights_only=True)  # the feature network learnt nothing and is not saved
    assert torch.equal(module.perceptual.network.body.conv2_2.weight, saved["features.7.weight"])
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert [k for k in checkpoint["state_dict"] if k.startswith("perceptual.")] == ["perceptual.network_sha256"]
    assert len(checkpoint["gan_cli"]["pools"][0]["fake_B"]["images"]) == 6

    out = tmp_path / "translated"
    settings = {"ckpt_path": str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "output": str(out),
                "input": str(image_pairs["unpaired"] / "testA"), "inference": None, "device": "cpu"}
    written, _ = translate(OmegaConf.create({**settings, "direction": "AtoB"}))
    assert len(written) == 6 and all(path.is_file() for path in written)
    with pytest.raises(UserError, match="translates AtoB only"):
        translate(OmegaConf.create({**settings, "direction": "BtoA"}))


def test_the_digit_classifier_is_a_perceptual_network_offline(image_pairs, tmp_path):
    classifier = tmp_path / "classifier"
    train(compose_train(classifier, ["model=classifier", "data=fake", "data.dataset.size=32", "data.batch_size=16",
                                     "model.network.widths=[4,8]", "model.network.hidden=8", "trainer=cpu",
                                     "trainer.max_epochs=1", "logger=none", "callbacks=checkpoints",
                                     "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]))
    digits = ["model/perceptual=digits", f"model.perceptual.classifier_ckpt={classifier}/checkpoints/last.ckpt",
              "model.perceptual.layers=[classifier.network.body.2,classifier.network.hidden]"]
    cfg = compose_train(tmp_path / "run", [*unpaired_run("direct_translation", image_pairs), *digits, "logger=none",
                                           "callbacks=none"])
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert type(module.perceptual.network).__name__ == "ClassifierFeatures"  # layers by name from the classifier
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    # the first block's ReLU (before its pooling) and the hidden layer
    assert [tuple(f.shape) for f in module.perceptual.features(x)] == [(2, 4, 32, 32), (2, 8)]
    assert math.isfinite(float(trainer.callback_metrics["train/perc"]))


def test_cyclegan_takes_the_perceptual_term_both_ways(make_cfg, image_pairs, vgg16_file):
    cfg = make_cfg(*quick("cyclegan", image_pairs, vgg16_file, "model.perceptual.weight=3.0", "logger=none",
                          "callbacks=none"))
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    for name in ("perc_A", "perc_B", "cycle_A", "g_loss"):
        value = float(trainer.callback_metrics[f"train/{name}"])
        assert math.isfinite(value) and value > 0, name
    real_A, real_B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    terms, fake_A, fake_B = module.generator_terms(real_A, real_B)
    assert terms["perc_A"].item() == pytest.approx(module.perceptual(real_A, fake_B).item(), rel=1e-5)
    assert terms["perc_B"].item() == pytest.approx(module.perceptual(real_B, fake_A).item(), rel=1e-5)


def test_resume_is_exact_with_the_perceptual_term(image_pairs, vgg16_file, tmp_path):
    args = quick("direct_translation", image_pairs, vgg16_file, "model.pool_size=4", "model.lr_constant_epochs=1",
                 "model.lr_decay_epochs=1", "trainer.max_epochs=2", "trainer.deterministic=true", "logger=none",
                 "callbacks.sample_grid.every_n_batches=0")  # the default callbacks keep the RNG state
    expected, resumed = resumed_and_uninterrupted(tmp_path, args)
    assert expected["global_step"] == resumed["global_step"] == 12
    assert same_state(expected["state_dict"], resumed["state_dict"])
    pools = [run["gan_cli"]["pools"][0]["fake_B"]["images"] for run in (expected, resumed)]
    assert len(pools[0]) == 4 and torch.equal(*pools)
