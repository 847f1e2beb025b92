"""pix2pix and CycleGAN: their objectives term by term, training on tiny folders, the learning-rate
schedule, and an exact resume that keeps the image pools and the schedule."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn

from gan_cli.commands.train import build, train
from gan_cli.config.schemas import validate_targets
from gan_cli.errors import UserError
from gan_cli.losses import LeastSquaresLoss, NonSaturatingLoss
from gan_cli.models.translation.cyclegan import CycleGAN, cycle_loss, identity_loss
from gan_cli.models.translation.pix2pix import Pix2Pix
from tests.conftest import translation_quick

pytestmark = pytest.mark.usefixtures("one_thread")


class Shift(nn.Module):
    """A 'generator' that adds a constant: its L1 distances are known exactly."""

    size_multiple = 1

    def __init__(self, by: float) -> None:
        super().__init__()
        self.by = by
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + self.by


class Constant(nn.Module):
    """A 'discriminator' that gives every patch the same score, and remembers what it was shown."""

    def __init__(self, score: float) -> None:
        super().__init__()
        self.score, self.seen = score, []
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        self.seen.append(x)
        return torch.full((x.size(0), 1, 2, 2), self.score)


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr)


def test_cycle_and_identity_terms():
    x = torch.rand(2, 3, 8, 8)
    # F(G(x)) = x exactly: no cycle loss; a generator into X that leaves x unchanged: no identity loss
    loss, fake, rec = cycle_loss(Shift(0.3), Shift(-0.3), x, weight=10.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(fake, x + 0.3) and torch.allclose(rec, x, atol=1e-6)
    assert cycle_loss(Shift(0.3), Shift(0.0), x, weight=10.0)[0].item() == pytest.approx(10 * 0.3)
    assert identity_loss(Shift(0.0), x, weight=5.0).item() == 0.0
    assert identity_loss(Shift(-0.2), x, weight=5.0).item() == pytest.approx(5 * 0.2)


def cyclegan(lambda_identity: float = 0.5) -> CycleGAN:
    shifts = iter([Shift(0.2), Shift(-0.1)])
    return CycleGAN(generator=lambda: next(shifts), discriminator=lambda: Constant(1.0), loss=LeastSquaresLoss(),
                    optimizer=adam, lambda_identity=lambda_identity)


def test_cyclegan_objective_has_weighted_cycle_and_identity_terms():
    model = cyclegan()  # G_A adds 0.2, G_B subtracts 0.1; D scores everything 1 (= "real": no LSGAN loss)
    real_A, real_B = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    terms, fake_A, fake_B = model.generator_terms(real_A, real_B)
    assert torch.allclose(fake_B, real_A + 0.2) and torch.allclose(fake_A, real_B - 0.1)
    expected = {"G_A": 0.0, "G_B": 0.0,
                "cycle_A": 10 * 0.1,        # G_B(G_A(a)) = a + 0.1, lambda_A = 10
                "cycle_B": 10 * 0.1,        # G_A(G_B(b)) = b + 0.1, lambda_B = 10
                "idt_A": 10 * 0.5 * 0.2,    # G_A(b) = b + 0.2, weighted lambda_B * lambda_identity
                "idt_B": 10 * 0.5 * 0.1}    # G_B(a) = a - 0.1, weighted lambda_A * lambda_identity
    assert {k: round(v.item(), 5) for k, v in terms.items()} == pytest.approx(expected)
    # D_A judges translations into B, D_B translations into A
    assert torch.allclose(model.D_A.seen[-1], fake_B) and torch.allclose(model.D_B.seen[-1], fake_A)
    assert set(cyclegan(lambda_identity=0).generator_terms(real_A, real_B)[0]) == {"G_A", "G_B", "cycle_A", "cycle_B"}


def test_pix2pix_discriminator_sees_input_and_output_and_g_adds_100_l1():
    model = Pix2Pix(generator=lambda: Shift(0.25), discriminator=lambda: Constant(0.0), loss=NonSaturatingLoss(),
                    optimizer=adam)
    real_A, real_B = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    fake_B = model.G(real_A)
    terms = model.generator_terms(model.conditional_critic(real_A), fake_B, real_B)
    shown = model.D.seen[-1]
    assert shown.shape == (2, 6, 8, 8)
    assert torch.equal(shown[:, :3], real_A) and torch.equal(shown[:, 3:], fake_B)
    assert terms["G_L1"].item() == pytest.approx(100 * (fake_B - real_B).abs().mean().item())
    assert terms["G_GAN"].item() == pytest.approx(math.log(2))  # -log sigmoid(0)


@pytest.mark.parametrize("model, logged", [
    ("cyclegan", ["G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B"]),
    ("pix2pix", ["G_GAN", "G_L1", "D_real", "D_fake"]),
])
def test_translation_models_train_and_log_every_term(make_cfg, image_pairs, model, logged):
    cfg = make_cfg(*translation_quick(model, image_pairs), "callbacks.sample_grid.every_n_batches=0")
    datamodule, module, trainer = build(cfg)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in [*logged, "g_loss", "d_loss", "grad_norm_G", "grad_norm_D", "lr_G", "lr_D"]:
        assert f"train/{name}" in metrics and math.isfinite(float(metrics[f"train/{name}"])), name
    now = module.state_dict()
    for net in ("G_A", "G_B", "D_A", "D_B") if model == "cyclegan" else ("G", "D"):
        assert any(not torch.equal(before[k], now[k]) for k in before if k.startswith(net + ".")), f"{net} did not learn"
    if model == "cyclegan":  # 3 batches of 2 fakes per domain went through each pool
        assert len(module.fake_A_pool) == len(module.fake_B_pool) == 6
    rows = 8 if model == "cyclegan" else 3  # real_A fake_B rec_A idt_B real_B fake_A rec_B idt_A | input output target
    grid = Image.open(cfg.paths.output_dir + "/samples/translations_latest.png")
    assert grid.size == (2 + 4 * 34, 2 + rows * 34)


@pytest.mark.parametrize("loss", ["wgan_gp", "hinge"])
def test_cyclegan_takes_any_adversarial_loss(make_cfg, image_pairs, loss):
    cfg = make_cfg(*translation_quick("cyclegan", image_pairs), f"loss={loss}", "trainer.max_epochs=2",
                   "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    d_steps = 5 if loss == "wgan_gp" else 1
    assert module.d_updates == 6
    assert trainer.global_step == 6 + 6 // d_steps  # one optimizer step per D update and per G update
    assert math.isfinite(float(trainer.callback_metrics["train/d_loss"]))


class LearningRates(pl.Callback):
    def __init__(self) -> None:
        self.seen = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.seen.append([opt.param_groups[0]["lr"] for opt in trainer.optimizers])


def test_learning_rate_is_constant_then_decays_linearly_and_sets_the_run_length(make_cfg, image_pairs):
    quick = [arg for arg in translation_quick("pix2pix", image_pairs) if not arg.startswith("trainer.max_epochs")]
    cfg = make_cfg(*quick, "model.lr_constant_epochs=2",
                   "model.lr_decay_epochs=3", "model.lr=0.4", "logger=none", "callbacks=none")
    assert cfg.trainer.max_epochs == 5
    datamodule, module, trainer = build(cfg)
    trainer.callbacks.append(rates := LearningRates())
    trainer.fit(module, datamodule=datamodule)
    expected = [0.4, 0.4, 0.4 * 3 / 4, 0.4 * 2 / 4, 0.4 * 1 / 4]
    assert [g for g, _ in rates.seen] == pytest.approx(expected)
    assert [d for _, d in rates.seen] == pytest.approx(expected)


def test_resume_keeps_the_image_pools_and_the_schedule(make_cfg, image_pairs, tmp_path):
    args = [*translation_quick("cyclegan", image_pairs), "model.pool_size=4", "model.lr_constant_epochs=1",
            "model.lr_decay_epochs=2", "trainer.max_epochs=3", "trainer.deterministic=true", "logger=none"]
    train(straight_cfg := make_cfg(*args))
    first = make_cfg(*args, "trainer.max_epochs=2")
    first.paths.output_dir = first.trainer.default_root_dir = str(tmp_path / "first")
    train(first)
    resumed = make_cfg(*args, f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}")
    resumed.paths.output_dir = resumed.trainer.default_root_dir = str(tmp_path / "resumed")
    train(resumed)

    def final(cfg):
        return torch.load(f"{cfg.trainer.default_root_dir}/checkpoints/last.ckpt", weights_only=True)

    expected, got = final(straight_cfg), final(resumed)
    assert got["epoch"] == expected["epoch"] == 2 and got["global_step"] == expected["global_step"]
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), f"{key} differs after resume"
    for pool in ("fake_A", "fake_B"):
        assert len(expected["gan_cli"]["pools"][0][pool]["images"]) == 4
        assert torch.equal(expected["gan_cli"]["pools"][0][pool]["images"], got["gan_cli"]["pools"][0][pool]["images"])
    assert expected["lr_schedulers"] == got["lr_schedulers"]
    assert [s["last_epoch"] for s in got["lr_schedulers"]] == [3, 3]
    for exp_opt, got_opt in zip(expected["optimizer_states"], got["optimizer_states"]):
        assert exp_opt["param_groups"][0]["lr"] == got_opt["param_groups"][0]["lr"]
        for pid, state in exp_opt["state"].items():
            assert torch.equal(state["exp_avg"], got_opt["state"][pid]["exp_avg"])


def test_translation_models_need_image_pairs(make_cfg):
    with pytest.raises(UserError, match="image-pair data"):
        validate_targets(make_cfg("model=cyclegan", "data=mnist_5k"))
    with pytest.raises(UserError, match="image-pair data"):
        validate_targets(make_cfg("model=dcgan", "data=horse2zebra"))


def test_defaults_follow_the_papers(make_cfg):
    cyc = make_cfg("model=cyclegan")
    assert cyc.data.dataset.name == "horse2zebra" and cyc.loss._target_.endswith("LeastSquaresLoss")
    assert (cyc.model.lambda_A, cyc.model.lambda_B, cyc.model.lambda_identity, cyc.model.pool_size) == (10, 10, 0.5, 50)
    assert cyc.model.generator.n_blocks == 9 and cyc.trainer.max_epochs == 200
    assert (cyc.data.load_size, cyc.data.crop_size, cyc.data.batch_size) == (286, 256, 1)
    small = make_cfg("model=cyclegan", "data.crop_size=128")
    assert small.model.generator.n_blocks == 6 and small.data.load_size == 143
    p2p = make_cfg("model=pix2pix")
    assert p2p.data.dataset.name == "facades" and p2p.data.direction == "BtoA"
    assert p2p.model.lambda_L1 == 100 and p2p.model.generator.num_downs == 8 and p2p.model.discriminator.channels == 6
    assert make_cfg("model=pix2pix", "data=maps", "loss=lsgan").loss._target_.endswith("LeastSquaresLoss")


def test_paper_inference_keeps_dropout_and_leaves_batch_norm_statistics_alone():
    from gan_cli.models.translation.base import translate_images
    from gan_cli.nets import UnetGenerator

    generator = UnetGenerator(channels=3, num_downs=6, ngf=4).train()  # one block with dropout
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    x = torch.rand(1, 3, 40, 28) * 2 - 1  # padded to 64 x 64 for the 6-level U-Net, cropped back
    first, second = translate_images(generator, x, "paper"), translate_images(generator, x, "paper")
    assert first.shape == x.shape
    assert not torch.equal(first, second)  # dropout is the noise at test time (Isola et al.)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())  # running stats untouched
    assert generator.training
    assert torch.equal(translate_images(generator, x, "eval"), translate_images(generator, x, "eval"))
