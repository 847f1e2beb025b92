"""The training engine (engine=fast, gan_cli.callbacks.engine): the same training run faster. Compiled networks
train the same weights as eager ones, every loss and trick trains compiled, batches of in-memory data are the same
when kept on the device, and no training step of any model reads a device value on the host between log steps
(tests/sync_detector.py: what `torch.cuda.set_sync_debug_mode("error")` checks on a GPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gan_cli.callbacks.engine import Engine
from gan_cli.commands.train import build
from tests.conftest import QUICK, SMALL, translation_quick
from tests.gpgan_helpers import gpgan_quick, write_scenes
from tests.helpers import refusal
from tests.sync_detector import HostReadsBetweenLogSteps

pytestmark = pytest.mark.usefixtures("one_thread")

#: log steps only at the run's last batch: 7 batches of 8 in 2 epochs are checked
SPARSE_LOGS = ["trainer.log_every_n_steps=50", "trainer.max_epochs=2", "trainer.enable_progress_bar=true",
               "callbacks.progress_bar.refresh_rate=1", "logger=tensorboard", "engine=fast"]
TEXT = ["data=mnist_5k_captions", "text_encoder=hashing", "data.batch_size=8", "+trainer.limit_train_batches=4"]
#: a few batches of each model (tiny networks), every family and every adversarial model
STEPS = {
    "gan": ["model=gan", *SMALL["gan"]],
    "dcgan": ["model=dcgan", *SMALL["dcgan"]],
    "cgan": ["model=cgan", *SMALL["cgan"]],
    "dcgan+tricks": ["model=dcgan", *SMALL["dcgan"], "tricks=[ema,ada,r1,spectral_norm,diffaugment,label_smoothing]"],
    "sngan": ["model=sngan", "model.generator.ngf=8", "model.discriminator.ndf=8", "data.image_size=16"],
    "stylegan2": ["model=stylegan2", "data.image_size=16", "model.preset=tiny", "model.latent_dim=32", "model.w_dim=32",
                  "model.r1_interval=2", "model.pl_interval=2"],  # the lazy R1 and path-length steps between log steps
    "infogan": ["model=infogan", "model.generator.ngf=4", "model.generator.fc=16", "model.discriminator.ndf=4",
                "model.discriminator.fc=16", "model.discriminator.q_hidden=8"],
    "ssgan": ["model=ssgan", "data.labels_per_class=2", "data.dataset.size=80", "data.batch_size=20"],
    "lapgan": ["model=lapgan"],
    "vae": ["model=vae", "model.encoder.hidden=[16]", "model.decoder.hidden=[16]", "model.code_dim=4"],
    "autoencoder": ["model=autoencoder"],
    "classifier": ["model=classifier"],
    "capsnet": ["model=capsnet", "model.network.conv_channels=8", "model.network.primary_capsules=4",
                "model.network.primary_dim=4", "model.decoder.hidden=[16]", "data.image_size=28"],
    "rbm": ["model=rbm", "data.image_size=8", "model.hidden=16", "model.monitor_size=16"],
    "text_cgan": ["model=text_cgan", *TEXT, "model.generator.ngf=4", "model.discriminator.ndf=4",
                  "model.generator.code_dim=8", "model.discriminator.code_dim=8", "model.generator.latent_dim=8"],
}
FOLDERS = ("cyclegan", "pix2pix", "gpgan")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("engine") / "scenes")


def quick(model: str, image_pairs, scenes) -> list[str]:
    if model in ("cyclegan", "pix2pix"):
        return translation_quick(model, image_pairs)
    if model == "gpgan":
        return [*gpgan_quick(scenes), "data.dataset.train_pairs=24"]
    if model == "text_cgan":  # captioned digits instead of data=fake
        return [*(o for o in QUICK if not o.startswith("data")), *STEPS[model]]
    return [*QUICK, "data.dataset.size=32", "data.batch_size=8", *STEPS[model]]


@pytest.mark.slow
@pytest.mark.parametrize("model", [*STEPS, *FOLDERS])
def test_no_device_value_is_read_on_the_host_between_log_steps(make_cfg, image_pairs, scenes, model):
    datamodule, module, trainer = build(make_cfg(*quick(model, image_pairs, scenes), *SPARSE_LOGS))
    detector = HostReadsBetweenLogSteps()
    trainer.callbacks.insert(len(trainer.callbacks) - 2, detector)  # last but the checkpoint callbacks
    trainer.fit(module, datamodule=datamodule)
    assert detector.checked_batches >= 3
    assert not detector.found, f"{len(detector.found)} host reads:\n{detector.sites()}"


def test_the_detector_sees_a_host_read_of_a_loss(make_cfg, monkeypatch):
    """The check above can fail: a training step that prints its loss with .item() is caught."""
    from gan_cli.models.gans.gan import GAN

    step = GAN.training_step

    def printing_step(self, batch, batch_idx) -> None:
        step(self, batch, batch_idx)
        print(self.discriminator(batch["image"]).mean().item())

    monkeypatch.setattr(GAN, "training_step", printing_step)
    datamodule, module, trainer = build(make_cfg(*quick("dcgan", None, None), *SPARSE_LOGS))
    detector = HostReadsBetweenLogSteps()
    trainer.callbacks.insert(0, detector)
    trainer.fit(module, datamodule=datamodule)
    assert detector.found and detector.found[0][0] == "item"


def test_engine_fast_picks_bf16_channels_last_and_compiles_on_a_gpu_only(make_cfg):
    cfg = make_cfg("engine=fast")
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert cfg.trainer.precision == ("bf16-mixed" if bf16 or torch.cuda.is_available() else "32-true")
    assert cfg.engine.channels_last and cfg.engine.compile == "gpu" and cfg.trainer.benchmark
    datamodule, module, trainer = build(make_cfg(*QUICK, *SMALL["dcgan"], "engine=fast", "data.dataset.size=32",
                                                 "data.image_size=16"))
    trainer.fit(module, datamodule=datamodule)
    engine = next(c for c in trainer.callbacks if isinstance(c, Engine))
    assert engine.compiled == torch.cuda.is_available()
    assert datamodule.data_device == trainer.strategy.root_device
    conv = next(m for m in module.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()


def trained_weights(make_cfg, *overrides: str) -> dict[str, torch.Tensor]:
    datamodule, module, trainer = build(make_cfg(*QUICK, *overrides))
    trainer.fit(module, datamodule=datamodule)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_compiled_fp32_training_ends_with_the_weights_of_eager_training(make_cfg):
    """20 batches of DCGAN (20 D and 20 G updates), compiled vs eager, fp32: every weight tensor within 1e-5 in
    relative norm (||compiled - eager|| / ||eager||; inductor fuses and reorders sums, so bits differ)."""
    run = [*SMALL["dcgan"], "data.dataset.size=320", "data.image_size=16", "seed=3", "trainer.deterministic=true"]
    eager = trained_weights(make_cfg, *run)
    compiled = trained_weights(make_cfg, *run, "engine.compile=true")
    for name, weight in eager.items():
        if weight.is_floating_point() and weight.norm() > 0:
            assert (compiled[name] - weight).norm() / weight.norm() < 1e-5, name


#: every loss, and every trick, with compiled networks (spectral norm, penalties' double backward, unrolling)
COMPILED = [["loss=wgan_gp"], ["loss=wgan"], ["loss=hinge"], ["loss=lsgan"], ["loss=minimax"],
            ["tricks=[r1,spectral_norm,ema,diffaugment,label_smoothing,ada]"], ["tricks=[unrolled]"],
            ["tricks=[feature_matching,minibatch_discrimination,historical_averaging,virtual_batchnorm]"]]


@pytest.mark.slow
@pytest.mark.parametrize("choice", COMPILED, ids=lambda c: c[0])
def test_every_loss_and_trick_trains_with_compiled_networks(make_cfg, choice):
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "data.image_size=16", "data.dataset.size=32", "engine.compile=true",
                   "logger=csv", *choice)
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert next(c for c in trainer.callbacks if isinstance(c, Engine)).compiled and trainer.global_step > 0
    assert all(math.isfinite(float(v)) for k, v in trainer.callback_metrics.items() if "loss" in k)


def test_a_model_that_cannot_compile_is_named_with_its_reason(make_cfg, monkeypatch):
    from gan_cli.models.gans.gan import GAN

    monkeypatch.setattr(GAN, "compile_refusal", lambda self: "its discriminator is rebuilt every step.")
    datamodule, module, trainer = build(make_cfg(*QUICK, *SMALL["dcgan"], "engine.compile=true"))
    error = refusal(lambda: trainer.fit(module, datamodule=datamodule))
    assert "model=dcgan cannot be trained with engine.compile: its discriminator is rebuilt" in str(error)
    assert "engine.compile=false" in str(error)


def test_a_bad_compile_choice_is_named(make_cfg):
    error = refusal(lambda: build(make_cfg(*QUICK, "engine.compile=sometimes")))
    assert "engine.compile=sometimes" in str(error) and "gpu" in str(error)


def test_in_memory_batches_kept_on_the_device_are_the_batches_of_the_loader(make_cfg):
    from hydra.utils import instantiate

    datamodule = instantiate(make_cfg(*QUICK, "data.dataset.size=48").data)
    datamodule.setup("fit")
    plain = list(datamodule.train_dataloader())
    datamodule.data_device = torch.device("cpu")  # as Engine.setup sets it to the training device
    loader = datamodule.train_dataloader()
    assert loader.dataset.batches.images.device == datamodule.data_device
    resident = list(loader)
    assert len(plain) == len(resident) == 3
    assert all(torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
               for a, b in zip(plain, resident))


def test_pinned_memory_follows_the_device_unless_set(make_cfg):
    from gan_cli.data.loading import pinned

    datamodule, module, trainer = build(make_cfg(*QUICK))
    datamodule.trainer = trainer
    assert pinned(datamodule) is False  # a CPU run
    datamodule.pin_memory = True
    assert pinned(datamodule) is True


class SyncIsAnError:
    """torch.cuda.set_sync_debug_mode("error") from the second epoch on (the first compiles and records graphs),
    on the batches that are not log steps."""

    def __init__(self) -> None:
        import pytorch_lightning as pl

        from gan_cli.lightning_state import logs_this_step

        class Callback(pl.Callback):
            checked = 0

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                if trainer.current_epoch >= 1 and not logs_this_step(trainer):
                    torch.cuda.set_sync_debug_mode("error")
                    Callback.checked += 1

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                torch.cuda.set_sync_debug_mode("default")

        self.callback = Callback()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (on a CPU, "
                    "test_no_device_value_is_read_on_the_host_between_log_steps checks every model instead)")
@pytest.mark.parametrize("model", ["dcgan", "gan", "cgan", "vae"])
def test_on_a_gpu_no_step_of_the_fast_engine_synchronises(make_cfg, model):
    datamodule, module, trainer = build(make_cfg(*quick(model, None, None), *SPARSE_LOGS, "trainer=gpu",
                                                 "trainer.max_epochs=3", "trainer.enable_progress_bar=true"))
    check = SyncIsAnError()
    trainer.callbacks.insert(len(trainer.callbacks) - 2, check.callback)
    trainer.fit(module, datamodule=datamodule)  # a synchronising call raises inside the step
    assert check.callback.checked >= 4
