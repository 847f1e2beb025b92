"""Training runs on CPU with the synthetic data: every model with every loss, logging, k, precision,
and the non-finite-loss guard."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_cli.commands.train import build, metric_value, train
from gan_cli.errors import NonFiniteLossError
from tests.conftest import QUICK, SMALL

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ["gan", "dcgan", "cgan"]
LOSSES = ["minimax", "nonsaturating", "lsgan", "wgan", "wgan_gp", "hinge"]


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_with_every_loss(make_cfg, model, loss):
    cfg = make_cfg(*QUICK, *SMALL[model], f"model={model}", f"loss={loss}", "loss.d_steps=2",
                   "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    before_g, before_d = weights(module.generator), weights(module.discriminator)
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z", "train/grad_norm_G", "train/grad_norm_D"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    changed = lambda before, now: any(not torch.equal(before[k], now[k]) for k in before)  # noqa: E731
    assert changed(before_g, weights(module.generator)) and changed(before_d, weights(module.discriminator))
    # 4 batches, k=2: 4 discriminator updates and 2 generator updates
    assert module.d_updates == 4 and trainer.global_step == 6
    if loss == "wgan":  # weight clipping keeps the critic's weights in [-c, c]
        assert all(p.abs().max() <= 0.01 + 1e-7 for p in module.discriminator.parameters())


def test_k_discriminator_steps_per_generator_step(make_cfg):
    cfg = make_cfg(*QUICK, *SMALL["gan"], "model=gan", "loss.d_steps=3", "data.dataset.size=96",
                   "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    opt_g, opt_d = (opt.optimizer for opt in module.optimizers())
    steps = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
    assert steps(opt_d) == 6 and steps(opt_g) == 2


def test_bf16_mixed_precision_on_cpu(make_cfg):
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "trainer.precision=bf16-mixed", "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert math.isfinite(float(trainer.callback_metrics["train/g_loss"]))


def test_logs_scalars_images_hparams_pngs_and_checkpoints(make_cfg, tmp_path):
    cfg = make_cfg(*QUICK, *SMALL["cgan"], "model=cgan", "trainer.max_epochs=2",
                   "callbacks.sample_grid.every_n_batches=2")
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    pngs = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert {"samples_epoch000.png", "samples_epoch001.png", "samples_latest.png", "samples_step0000002.png"} <= set(pngs)
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z", "train/grad_norm_G", "train/grad_norm_D",
            "train/lr_G", "train/lr_D"} <= scalars
    assert "images/samples" in events.Tags()["images"]
    assert (run / "tensorboard" / "hparams.yaml").read_text().count("lr") >= 1
    assert metric_value(metrics, "train/g_loss") == metrics["train/g_loss"]


def test_cgan_grid_rows_are_labels(make_cfg):
    cfg = make_cfg(*QUICK, *SMALL["cgan"], "model=cgan")
    _, module, _ = build(cfg)
    rows = module.fixed_labels.view(10, -1)
    assert torch.equal(rows, torch.arange(10)[:, None].expand_as(rows))
    images, per_row = module.visuals()["samples"]
    assert per_row == rows.size(1) and images.size(0) == rows.numel()
    # the label reaches G: same noise, another label, another image
    z = module.fixed_z[:2]
    assert not torch.allclose(module.generator(z, torch.tensor([0, 0])), module.generator(z, torch.tensor([1, 1])))


def test_cgan_refuses_unlabelled_data(make_cfg):
    from hydra.errors import InstantiationException

    from gan_cli.errors import UserError, user_message

    cfg = make_cfg(*QUICK, "model=cgan", "data.num_classes=0")
    with pytest.raises(InstantiationException, match="no labels") as error:
        build(cfg)
    assert issubclass(NonFiniteLossError, UserError)
    # the user sees the model's paragraph alone, not Hydra's wrapping of it, and the way out
    shown = user_message(error.value)
    assert shown.startswith("This model is class-conditional") and "Error in call" not in shown
    assert "model=dcgan" in shown


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(make_cfg):
    # 4 batches an epoch: epoch 0 ends with a good checkpoint, then G's weights turn NaN at batch 6
    cfg = make_cfg(*QUICK, *SMALL["gan"], "model=gan", "trainer.max_epochs=3",
                   "+callbacks.poison._target_=tests.helpers.PoisonWeights", "+callbacks.poison.at_batch=6")
    with pytest.raises(NonFiniteLossError, match=r"step 6 .*last\.ckpt"):
        train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
