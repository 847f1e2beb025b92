"""StackGAN: stage sizes, the CA KL in G's loss, Stage-I / Stage-II / both training on captioned digits, the
frozen Stage-I read from a checkpoint, the switch between stages and its exact resume, sampling."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.errors import InstantiationException
from torch.distributions import Normal, kl_divergence

from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.models.contract import TextSampler
from gan_cli.models.text_to_image.base import caption_panel
from gan_cli.models.text_to_image.stackgan_nets import StackDiscriminator, Stage1Generator, Stage2Generator
from tests.conftest import compose_train
from tests.helpers import resumed_and_uninterrupted, same_state

pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks for both stages
TINY = ["model=stackgan", "model.stage1_generator.ngf=4", "model.stage1_generator.latent_dim=8",
        "model.stage1_generator.condition_dim=8", "model.stage1_discriminator.ndf=4",
        "model.stage1_discriminator.condition_dim=8", "model.stage2_generator.ngf=4",
        "model.stage2_generator.condition_dim=8", "model.stage2_generator.residual_blocks=1",
        "model.stage2_discriminator.ndf=4", "model.stage2_discriminator.condition_dim=8"]
#: two batches of 8 captioned digits an epoch, hashed captions
RUN = ["data=mnist_5k_captions", "text_encoder=hashing", "data.batch_size=8", "trainer=cpu",
       "trainer.limit_train_batches=2", "trainer.limit_val_batches=0", "trainer.max_epochs=1",
       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
       "logger=none", *TINY]


def test_stage2_draws_four_times_the_stage1_size():
    text = torch.randn(3, 16)
    for size in (32, 64):
        low, mu, logvar = Stage1Generator(16, channels=3, image_size=size // 4, ngf=4).eval()(torch.randn(3, 100), text)
        high, _, _ = Stage2Generator(16, channels=3, image_size=size, ngf=4, residual_blocks=1).eval()(low, text)
        assert low.shape == (3, 3, size // 4, size // 4) and high.shape == (3, 3, size, size)
        assert mu.shape == logvar.shape == (3, 128)
        for image in (low, high):
            assert StackDiscriminator(16, 3, image.size(-1), ndf=4).eval()(image, text).shape == (3,)
    # the paper's Stage-I generator (1024-D char-CNN-RNN text, z 100, ngf 128, 64 px) has the reference's
    # parameter count, summed by hand from its layers: CA fc 262,400; fc 3,735,552 + BN 32,768; up blocks
    # 4,718,592 + 1,024, 1,179,648 + 512, 294,912 + 256, 73,728 + 128; image conv 1,728
    paper = Stage1Generator(1024, channels=3, image_size=64, latent_dim=100, condition_dim=128, ngf=128)
    assert sum(p.numel() for p in paper.parameters()) == 10_301_248


@pytest.mark.parametrize("size", ["28", "16"])
def test_an_image_size_without_a_quarter_is_refused(make_cfg, size):
    with pytest.raises(InstantiationException, match=f"data.image_size={size} does not fit StackGAN"):
        build(make_cfg(*RUN, f"data.image_size={size}"))


def test_generator_loss_carries_the_weighted_kl_of_the_conditioning_augmentation(make_cfg):
    _, module, _ = build(make_cfg(*RUN, "model.kl_weight=3.0"))
    mu, logvar = torch.randn(5, 8), torch.randn(5, 8)
    closed_form = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).mean()  # mean over dims, batch
    assert torch.allclose(module.kl_term(mu, logvar), 3.0 * closed_form, atol=1e-6)
    assert module.kl_term(torch.zeros(5, 8), torch.zeros(5, 8)) == 0


def finite_losses(module, trainer, stage: int) -> None:
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/kl", "train/D_x", "train/D_wrong"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert float(metrics["train/stage"]) == stage


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    """A Stage-I run of two steps: its checkpoint."""
    run = tmp_path_factory.mktemp("stage1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train(compose_train(run, [*RUN, "model.stage=1"]))
    torch.set_num_threads(threads)
    return run / "checkpoints" / "last.ckpt"


def test_stage2_trains_on_a_frozen_stage1_from_its_checkpoint(tmp_path, stage1_run):
    saved = torch.load(stage1_run, weights_only=True)["state_dict"]
    stage1 = {k: v for k, v in saved.items() if k.startswith("stage1_generator.")}
    assert stage1 and not any(k.startswith("stage2_") for k in saved)
    datamodule, module, trainer = build(compose_train(tmp_path / "stage2", [*RUN, "model.stage=2",
                                                                            f"model.stage1_ckpt={stage1_run}"]))
    before = {k: v.clone() for k, v in module.state_dict().items() if k.startswith("stage2_")}
    trainer.fit(module, datamodule=datamodule)
    finite_losses(module, trainer, stage=2)
    after = module.state_dict()
    # Stage-I is the checkpoint's, weights and batch-norm statistics untouched by Stage-II's training
    assert same_state(stage1, {k: after[k] for k in stage1})
    assert not any(torch.equal(before[k], after[k]) for k in before if k.endswith("image.0.weight"))
    check_sampling(tmp_path / "stage2" / "checkpoints" / "last.ckpt")


def test_a_bad_stage1_checkpoint_is_a_clear_error(tmp_path, stage1_run):
    def stage2(*overrides):
        return build(compose_train(tmp_path / "bad", [*RUN, "model.stage=2", *overrides]))

    with pytest.raises(InstantiationException, match="model.stage=2 trains Stage-II on top of a trained Stage-I"):
        stage2()
    # the file is read when training starts (a Stage-II checkpoint samples without it)
    datamodule, module, trainer = stage2(f"model.stage1_ckpt={tmp_path / 'missing.ckpt'}")
    with pytest.raises(UserError, match="model.stage1_ckpt: No checkpoint at"):
        trainer.fit(module, datamodule=datamodule)
    checkpoint = torch.load(stage1_run, weights_only=True)
    config = checkpoint["gan_cli"]["config"]
    for name, change in {"dcgan": {"_target_": "gan_cli.models.gans.gan.GAN"}, "stage2": {"stage": "2"}}.items():
        edited = {**config, "model": {**config["model"], **change}}
        torch.save({**checkpoint, "gan_cli": {**checkpoint["gan_cli"], "config": edited}}, tmp_path / f"{name}.ckpt")
    with pytest.raises(UserError, match="written by GAN, not StackGAN"):
        module.load_stage1(str(tmp_path / "dcgan.ckpt"))
    with pytest.raises(UserError, match="is a StackGAN stage-2 checkpoint"):
        module.load_stage1(str(tmp_path / "stage2.ckpt"))
    _, wider, _ = stage2(f"model.stage1_ckpt={stage1_run}", "model.stage1_generator.ngf=8")
    with pytest.raises(UserError, match="other sizes than this run's"):
        wider.load_stage1(str(stage1_run))


def test_stage_both_switches_after_stage1_epochs_and_resumes_exactly(tmp_path):
    overrides = [*RUN, "model.stage=both", "model.stage1_epochs=1", "trainer.max_epochs=2"]
    whole, resumed = resumed_and_uninterrupted(tmp_path, overrides)
    assert same_state(whole["state_dict"], resumed["state_dict"])
    # after epoch 0 only Stage-I has trained (Adam holds state for its parameters alone); after epoch 1 Stage-II too
    _, built, _ = build(compose_train(tmp_path / "shape", overrides))
    g1, g2, d1, d2 = (len(list(getattr(built, name).parameters())) for name in (
        "stage1_generator", "stage2_generator", "stage1_discriminator", "stage2_discriminator"))
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert [len(s["state"]) for s in cut["optimizer_states"]] == [g1, d1]
    assert [len(s["state"]) for s in whole["optimizer_states"]] == [g1 + g2, d1 + d2]
    # Stage-I froze at the switch: its weights and batch-norm statistics are the epoch-0 ones
    stage1 = [k for k in cut["state_dict"] if k.startswith("stage1_generator.")]
    assert stage1 and all(torch.equal(cut["state_dict"][k], whole["state_dict"][k]) for k in stage1)


def check_sampling(checkpoint) -> None:
    """A Stage-II model read back from its checkpoint samples for embeddings, for kept captions (of labels), and
    logs its caption figure."""
    from gan_cli.assembly import load_model

    module, _ = load_model(checkpoint)
    assert isinstance(module, TextSampler) and module.phase() == 2
    text = torch.randn(3, 64)
    assert module.sample(3, text=text).shape == (3, 1, 32, 32)
    assert module.sample(4, text=text[:1]).shape == (4, 1, 32, 32)  # one caption for all
    assert module.sample(5).shape == (5, 1, 32, 32)  # training captions kept from the batches
    labels = torch.tensor([int(module.bank_label[0])] * 2)
    assert module.sample(2, labels=labels).shape == (2, 1, 32, 32)
    with pytest.raises(UserError, match=r"takes \(3, 64\)"):
        module.sample(3, text=torch.randn(3, 10))
    figure, per_row = module.visuals()["captions"]
    # 8 captions a row each, beside 4 Stage-I samples (enlarged) and the 4 Stage-II samples drawn from them
    panel = caption_panel(module.figure_captions, 32 + 4)[0].size(-1)
    assert per_row == 1 and figure.shape == (1, 3, 8 * (32 + 4), panel + 8 * (32 + 2) + 2)
    assert len(module.figure_captions) == 8 and all(isinstance(c, str) and c for c in module.figure_captions)
    assert (checkpoint.parent.parent / "samples" / "captions_latest.png").is_file()


def test_a_stage1_model_samples_its_quarter_size(make_cfg):
    _, stage1, _ = build(make_cfg(*RUN, "model.stage=1"))
    text = torch.randn(3, 64)
    stage1.remember(text, torch.zeros(3, dtype=torch.long))
    assert stage1.sample(2).shape == (2, 1, 8, 8)
