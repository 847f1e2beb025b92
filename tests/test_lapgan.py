"""LAPGAN: the Laplacian pyramid, the level count, training on CPU, the sampling chain and gan-sample chain=true."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.errors import InstantiationException
from PIL import Image

from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.models.gans.lapgan_nets import CoarseDiscriminator, ResidualDiscriminator
from gan_cli.nets.pyramid import downsample, gaussian_pyramid, pyramid_sizes, upsample
from gan_cli.tricks.base import score_layer
from tests.conftest import QUICK, compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks at every level
TINY_LAPGAN = ["model=lapgan", "model.coarse_generator.latent_dim=8", "model.coarse_generator.hidden=[16]",
               "model.coarse_discriminator.hidden=[16]", "model.residual_generator.width=4",
               "model.residual_generator.depth=2", "model.residual_discriminator.width=4"]
#: two batches of 8 images on the synthetic data (32 px, 1 channel, 10 classes)
FEW_STEPS = [*QUICK, "data.dataset.size=16", "data.batch_size=8", *TINY_LAPGAN]


def laplacian_pyramid(image: torch.Tensor, levels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(coarsest, [h...]): the coarsest Gaussian level and the `levels - 1` residuals, coarse to fine."""
    gaussian = gaussian_pyramid(image, levels)
    residuals = [fine - upsample(coarse, fine.shape[-2:]) for coarse, fine in zip(gaussian[:-1], gaussian[1:])]
    return gaussian[0], residuals


def reconstruct(coarsest: torch.Tensor, residuals: list[torch.Tensor]) -> torch.Tensor:
    """The image of a Laplacian pyramid: upsample and add each residual, coarse to fine."""
    image = coarsest
    for residual in residuals:
        image = upsample(image, residual.shape[-2:]) + residual
    return image


def test_the_laplacian_pyramid_reconstructs_the_image_exactly():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    coarsest, residuals = laplacian_pyramid(image, 3)
    assert coarsest.shape == (2, 3, 8, 8)
    assert [tuple(h.shape[-2:]) for h in residuals] == [(16, 16), (32, 32)]
    assert torch.allclose(reconstruct(coarsest, residuals), image, atol=1e-6)
    # the coarse levels are the blurred, decimated image: smooth images keep their mean, and u(d(.)) of a
    # constant image is the same constant (the blur sums to one, also at the borders)
    flat = torch.full((1, 1, 16, 16), 0.3)
    assert torch.allclose(upsample(downsample(flat)), flat)
    gaussian = gaussian_pyramid(image, 3)
    assert torch.equal(gaussian[-1], image) and torch.allclose(gaussian[0], coarsest)
    # one level: no residuals, the image itself
    same, none = laplacian_pyramid(image, 1)
    assert torch.equal(same, image) and none == []


def test_the_level_count_follows_the_image_size():
    assert pyramid_sizes(32) == [8, 16, 32]
    assert pyramid_sizes(64) == [8, 16, 32, 64]
    assert pyramid_sizes(28) == [14, 28]
    assert pyramid_sizes(32, coarsest_size=16) == [16, 32]
    assert pyramid_sizes(32, levels=4) == [4, 8, 16, 32]
    assert pyramid_sizes(32, levels=1) == [32]
    for bad in (5, 0):
        with pytest.raises(UserError, match=f"model.levels={bad}.*between 1 and 4"):
            pyramid_sizes(32, levels=bad)
    assert pyramid_sizes(28, levels=3) == [7, 14, 28]
    with pytest.raises(UserError, match=r"28 / 2\^3 = 3.5 px"):
        pyramid_sizes(28, levels=4)


def test_a_bad_level_count_is_a_clear_error_at_build(make_cfg):
    cfg = make_cfg(*FEW_STEPS, "model.levels=5", "logger=none", "callbacks=none")
    with pytest.raises(InstantiationException, match="model.levels=5 does not fit data.image_size=32"):
        build(cfg)


@pytest.mark.parametrize("conditional", ["auto", "false"])
def test_lapgan_trains_a_few_steps_with_finite_losses(make_cfg, conditional):
    cfg = make_cfg(*FEW_STEPS, f"model.conditional={conditional}", "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    assert module.sizes == [8, 16, 32] and module.num_classes == (10 if conditional == "auto" else 0)
    assert len(module.generators()) == len(module.discriminators()) == 3
    for discriminator in module.discriminators():
        assert isinstance(discriminator.score_layer, torch.nn.Linear)
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    names = ["train/d_loss", "train/g_loss", "train/grad_norm_G", "train/grad_norm_D", "train/lr_G", "train/D_x"]
    names += [f"train/{who}_loss_level{k}" for who in "dg" for k in range(3)]
    for name in names:
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert module.d_updates == 2
    # every level's generator and discriminator learnt
    changed = {id(p) for p, b in zip(module.parameters(), before) if not torch.equal(p.detach(), b)}
    for net in module.generators() + module.discriminators():
        assert any(id(p) in changed for p in net.parameters()), type(net).__name__


def test_conditional_true_needs_labels(make_cfg):
    cfg = make_cfg(*FEW_STEPS, "model.conditional=true", "data.num_classes=0")
    with pytest.raises(InstantiationException, match="no labels"):
        build(cfg)


def test_the_chain_ends_in_the_sample_and_is_logged(make_cfg):
    cfg = make_cfg(*FEW_STEPS, "logger=none", "callbacks=none")
    _, module, _ = build(cfg)
    labels = torch.tensor([0, 3, 7])
    torch.manual_seed(1)
    chain = module.chain(3, labels)
    torch.manual_seed(1)
    samples = module.sample(3, labels)
    assert len(chain) == 3 and all(image.shape == (3, 1, 32, 32) for image in chain)
    assert torch.allclose(chain[-1], samples)
    # the coarsest column is the 8x8 image of level 0, upsampled
    assert not torch.allclose(chain[0], chain[-1])
    visuals = module.visuals()
    images, per_row = visuals["chain"]
    assert per_row == 3 and images.shape == (10 * 3, 1, 32, 32)  # one row per label, one column per level
    samples, per_row = visuals["samples"]
    assert samples.shape == (80, 1, 32, 32) and per_row == 8
    # a row of the chain grid ends in that sample of the sample grid
    assert torch.allclose(images[3 * 2 + 2], samples[8 * 2])


def test_discriminators_score_a_batch():
    coarse = CoarseDiscriminator(channels=3, image_size=8, hidden=[8], num_classes=10)
    assert coarse(torch.randn(4, 3, 8, 8), torch.arange(4)).shape == (4,)
    fine = ResidualDiscriminator(channels=3, image_size=14, width=4)
    assert fine(torch.randn(4, 3, 14, 14), torch.randn(4, 3, 14, 14)).shape == (4,)


@pytest.fixture
def lapgan_checkpoint(make_cfg, tmp_path):
    """A tiny conditional LAPGAN trained for two steps in-process (with the default callbacks)."""
    train(make_cfg(*FEW_STEPS, "logger=none"))
    run = tmp_path / "run"
    assert {"chain_latest.png", "samples_latest.png"} <= {p.name for p in (run / "samples").iterdir()}
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_gan_sample_writes_the_chain(tmp_path, lapgan_checkpoint):
    result = run_cli([f"ckpt_path={lapgan_checkpoint}", "num_samples=4", "chain=true", "output=chain.png"], tmp_path,
                     module="gan-sample")
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / "chain.png") as image:
        assert image.size == (3 * 34 + 2, 4 * 34 + 2)  # 3 levels per row, a row per sample


def sample_config(ckpt, output: str, chain: bool = True):
    from omegaconf import OmegaConf

    return OmegaConf.create({"ckpt_path": str(ckpt), "num_samples": 4, "output": output, "label": None,
                             "nrow": None, "seed": 0, "device": "cpu", "chain": chain})


def test_gan_sample_chain_is_one_grid_of_a_pyramid_model(tmp_path, make_cfg, lapgan_checkpoint):
    from gan_cli.commands.sample import sample
    from tests.conftest import SMALL

    with pytest.raises(UserError, match="output=FILE.png"):
        sample(sample_config(lapgan_checkpoint, str(tmp_path / "each") + "/"))
    assert sample(sample_config(lapgan_checkpoint, str(tmp_path / "plain.png"), chain=False)).is_file()
    gan_run = tmp_path / "gan"
    train(compose_train(gan_run, [*QUICK, *SMALL["gan"], "model=gan", "data.dataset.size=16", "logger=none"]))
    with pytest.raises(UserError, match="chain=true needs a model that draws coarse to fine"):
        sample(sample_config(gan_run / "checkpoints" / "last.ckpt", str(tmp_path / "x.png")))


@pytest.mark.parametrize("level", ["coarse", "residual"])
def test_both_discriminator_levels_take_the_separate_condition_style(level):
    labels = torch.tensor([0, 1, 2, 3])
    if level == "coarse":
        joint = CoarseDiscriminator(channels=1, image_size=8, hidden=(12, 10), num_classes=10)
        separate = CoarseDiscriminator(channels=1, image_size=8, hidden=(12, 10), num_classes=10,
                                       condition_style="separate").eval()
        assert joint.features[0].in_features == 64 + 10 and separate.features[0].in_features == 64
        inputs = (torch.randn(4, 1, 8, 8),)
    else:
        joint = ResidualDiscriminator(channels=1, image_size=16, width=6, num_classes=10)
        separate = ResidualDiscriminator(channels=1, image_size=16, width=6, num_classes=10, condition_style="separate")
        assert joint.features[0].in_channels == 3 and separate.features[0].in_channels == 2  # no label plane
        inputs = (torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16))
    scores = separate(*inputs, labels)
    assert scores.shape == (4,) and not torch.allclose(scores, separate(*inputs, labels.flip(0)))
    assert score_layer(separate) is separate.head.score  # tricks find the score where the head puts it


def test_lapgan_with_separate_condition_style_trains(make_cfg):
    cfg = make_cfg(*QUICK, "model=lapgan", "model.coarse_discriminator.condition_style=separate",
                   "model.residual_discriminator.condition_style=separate", "logger=none", "callbacks=none",
                   "trainer.limit_train_batches=2")
    metrics = train(cfg)
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("train/"))
