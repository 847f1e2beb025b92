"""model=sngan (Miyato et al. 2018; projection discriminator, Miyato & Koyama 2018): the reference's parameter
counts, the projection term on a hand case, conditional batch norm, and a few training steps with the paper's
hinge loss, n_dis 5 and Adam betas (0, 0.9)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_cli.commands.train import build
from gan_cli.losses import HingeLoss
from gan_cli.models.gans.sngan_nets import ConditionalBatchNorm2d, SNGANDiscriminator, SNGANGenerator
from tests.conftest import QUICK

pytestmark = pytest.mark.usefixtures("one_thread")

#: parameter counts of Mimicry's networks (torch_mimicry, commit a7fda06: SNGANGenerator32/Discriminator32,
#: SNGANGenerator64/Discriminator64, CGANPDGenerator32/Discriminator32 with 10 classes), RGB, default widths
MIMICRY = {(32, 0): (4_276_739, 1_053_825), (64, 0): (12_220_675, 10_141_441), (32, 10): (4_304_387, 1_055_105)}
TINY = ["model=sngan", "model.generator.ngf=8", "model.discriminator.ndf=8"]


def parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize(("size", "classes"), list(MIMICRY))
def test_parameter_counts_equal_mimicrys(make_cfg, size, classes):
    cfg = make_cfg("model=sngan", "data=fake", f"data.image_size={size}", "data.channels=3",
                   f"data.num_classes={classes}")
    g = SNGANGenerator(channels=3, image_size=size, ngf=cfg.model.generator.ngf, num_classes=classes)
    d = SNGANDiscriminator(channels=3, image_size=size, ndf=cfg.model.discriminator.ndf, num_classes=classes)
    assert (parameters(g), parameters(d)) == MIMICRY[(size, classes)]


def test_every_discriminator_weight_is_spectrally_normalised():
    d = SNGANDiscriminator(channels=1, image_size=16, ndf=8, num_classes=3)
    # 3 convolutions in the first block, 2 in each of the other two, the score and the class embedding
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert len(layers) == 9 and all(parametrize.is_parametrized(m, "weight") for m in layers)
    g = SNGANGenerator(channels=1, image_size=16, ngf=8)
    assert not any(parametrize.is_parametrized(m) for m in g.modules())


def test_projection_score_is_the_linear_score_plus_the_inner_product_with_the_class_embedding(monkeypatch):
    d = SNGANDiscriminator(channels=1, image_size=16, ndf=2, num_classes=2)
    for layer in (d.score_layer, d.embed):  # plain weights, set by hand
        parametrize.remove_parametrizations(layer, "weight")
    with torch.no_grad():
        d.score_layer.weight.copy_(torch.tensor([[1.0, 1.0]]))
        d.score_layer.bias.zero_()
        d.embed.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    monkeypatch.setattr(d, "features", lambda images: torch.tensor([[3.0, 4.0]]).expand(len(images), 2))
    scores = d(torch.zeros(2, 1, 16, 16), torch.tensor([0, 1]))
    # psi(h) + <embed(y), h>: 7 + 3 for class 0, 7 + 8 for class 1
    assert scores.tolist() == [10.0, 15.0]


def test_conditional_batch_norm_scales_and_shifts_per_class():
    norm = ConditionalBatchNorm2d(3, num_classes=2)
    assert not norm.norm.affine and norm.embed.weight.shape == (2, 6)
    with torch.no_grad():
        norm.embed.weight.copy_(torch.tensor([[1.0, 1, 1, 0, 0, 0], [2.0, 2, 2, 5, 5, 5]]))
    x = torch.randn(4, 3, 5, 5)
    normalised = torch.nn.functional.batch_norm(x, None, None, training=True)
    out = norm(x, torch.tensor([0, 1, 0, 1]))
    torch.testing.assert_close(out[0], normalised[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], 2 * normalised[1] + 5, atol=1e-5, rtol=1e-5)


def test_a_conditional_generator_draws_each_label_differently():
    g = SNGANGenerator(channels=1, image_size=16, ngf=8, num_classes=3).eval()
    z = torch.randn(1, 128).expand(3, 128)
    images = g(z, torch.tensor([0, 1, 2]))
    assert images.shape == (3, 1, 16, 16) and images.abs().max() <= 1
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[1], images[2])


@pytest.mark.parametrize("size", [16, 32, 64])
def test_networks_reach_each_layout_size(size):
    g, d = SNGANGenerator(channels=3, image_size=size, ngf=16), SNGANDiscriminator(channels=3, image_size=size, ndf=16)
    images = g(torch.randn(2, 128))
    assert images.shape == (2, 3, size, size) and d(images).shape == (2,)
    with pytest.raises(ValueError, match="power of two"):
        SNGANGenerator(image_size=48)


@pytest.mark.parametrize("conditional", [True, False])
def test_trains_with_hinge_loss_five_d_updates_per_g_update_and_the_papers_adam(make_cfg, conditional):
    unconditional = [] if conditional else ["model.generator.num_classes=0"]
    cfg = make_cfg(*QUICK, *TINY, *unconditional, "data.image_size=16", "data.dataset.size=160", "logger=none",
                   "callbacks=none")
    datamodule, model, trainer = build(cfg)
    assert isinstance(model.loss, HingeLoss) and model.loss.d_steps == 5
    assert model.num_classes == (10 if conditional else 0) and model.discriminator.num_classes == model.num_classes
    g_before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    trainer.fit(model, datamodule=datamodule)
    opt_g, opt_d = trainer.optimizers
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.9) and opt_d.param_groups[0]["lr"] == 2e-4
    # 10 batches: 10 D updates, the generator every 5th
    assert model.d_updates == 10 and trainer.global_step == 12
    for name in ("train/d_loss", "train/g_loss"):
        assert math.isfinite(float(trainer.callback_metrics[name])), name
    assert any(not torch.equal(g_before[k], v) for k, v in model.generator.state_dict().items())
    grid, row = model.visuals()["samples"]
    assert grid.shape[1:] == (1, 16, 16) and (len(grid) == 80) == conditional
