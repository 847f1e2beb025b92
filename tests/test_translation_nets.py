"""Building blocks of pix2pix and CycleGAN, faithful to junyanz/pytorch-CycleGAN-and-pix2pix: the reference's
parameter counts, norm layers and weight init, the ResNet and U-Net generators and the PatchGAN discriminator.
The image pool and the linear learning-rate decay are in tests/test_pool_and_decay.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_cli.nets import PatchGANDiscriminator, ResnetGenerator, UnetGenerator
from gan_cli.nets.norm import conv_bias, init_weights_, norm_layer
from gan_cli.nets.patchgan import receptive_field

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------------------------
# parameter counts of the reference's networks (built on the meta device: no memory, no init cost)


@pytest.mark.parametrize("make,expected", [
    (lambda: ResnetGenerator(n_blocks=9), 11_378_179),
    (lambda: ResnetGenerator(n_blocks=6), 7_837_699),
    (lambda: UnetGenerator(num_downs=8), 54_413_955),
    (lambda: UnetGenerator(num_downs=7), 41_828_995),
    (lambda: PatchGANDiscriminator(channels=3, norm="instance"), 2_764_737),
    (lambda: PatchGANDiscriminator(channels=6, norm="batch"), 2_768_705),
], ids=["resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "patchgan_3ch_instance", "patchgan_6ch_batch"])
def test_parameter_counts_match_the_reference(make, expected):
    with torch.device("meta"):
        assert n_params(make()) == expected


# --------------------------------------------------------------------------------------------------------
# norm and init


def test_norm_layer_kinds():
    batch, instance = norm_layer("batch", 5), norm_layer("instance", 5)
    assert isinstance(batch, nn.BatchNorm2d) and batch.affine and batch.track_running_stats
    assert isinstance(instance, nn.InstanceNorm2d) and not instance.affine and not instance.track_running_stats
    assert isinstance(norm_layer("none", 5), nn.Identity)
    assert (conv_bias("batch"), conv_bias("instance"), conv_bias("none")) == (False, True, True)
    for bad in (lambda: norm_layer("group", 5), lambda: conv_bias("layer")):
        with pytest.raises(ValueError, match="batch, instance, none"):
            bad()


def test_convs_before_batch_norm_have_no_bias():
    net = PatchGANDiscriminator(ndf=4, norm="batch")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    # first and last conv are not followed by a norm and keep their bias
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    net = PatchGANDiscriminator(ndf=4, norm="instance")
    assert all(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))


def test_init_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 64, 4), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 32, 4), nn.Linear(50, 40))
    for m in net.modules():
        if hasattr(m, "bias") and m.bias is not None:
            nn.init.constant_(m.bias, 1.0)
    init_weights_(net, "normal", gain=0.02)
    for layer in (net[0], net[2], net[3]):
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert layer.weight.mean().abs() < 0.005
        assert (layer.bias == 0).all()
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert net[1].weight.std().item() == pytest.approx(0.02, rel=0.3)
    assert (net[1].bias == 0).all()
    init_weights_(net, "xavier", gain=2.0)  # std = gain * sqrt(2 / (fan_in + fan_out))
    assert net[3].weight.std().item() == pytest.approx(2.0 * (2 / 90) ** 0.5, rel=0.1)
    init_weights_(net, "kaiming")  # std = sqrt(2 / fan_in), gain not used
    assert net[0].weight.std().item() == pytest.approx((2 / (16 * 16)) ** 0.5, rel=0.1)
    init_weights_(net, "orthogonal", gain=1.0)
    w = net[3].weight
    assert torch.allclose(w @ w.T, torch.eye(40), atol=1e-5)
    with pytest.raises(ValueError, match="normal, xavier, kaiming, orthogonal"):
        init_weights_(net, "uniform")


# --------------------------------------------------------------------------------------------------------
# ResNet generator


@pytest.mark.parametrize("channels,out_channels", [(3, None), (1, 3)])
def test_resnet_generator_keeps_the_spatial_size(channels, out_channels):
    torch.manual_seed(0)
    gen = ResnetGenerator(channels, out_channels, ngf=4, n_blocks=2)
    x = torch.randn(2, channels, 16, 24)
    y = gen(x)
    assert y.shape == (2, out_channels or channels, 16, 24)
    assert y.abs().max() <= 1 and y.std() > 0
    assert gen.size_multiple == 4
    with pytest.raises(ValueError, match="multiples of 4"):
        gen(torch.randn(1, channels, 18, 16))


def test_resnet_blocks_and_dropout():
    gen = ResnetGenerator(ngf=4, n_blocks=3, dropout=True)
    blocks = [m for m in gen.modules() if type(m).__name__ == "ResnetBlock"]
    assert len(blocks) == 3
    assert sum(isinstance(m, nn.Dropout) for m in gen.modules()) == 3
    assert not any(isinstance(m, nn.Dropout) for m in ResnetGenerator(ngf=4, n_blocks=3).modules())
    # each block is a residual: zeroing its body leaves the identity
    block = blocks[0].eval()
    for p in block.parameters():
        nn.init.zeros_(p)
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(block(x), x)


# --------------------------------------------------------------------------------------------------------
# U-Net generator


def test_unet_skip_connections_join_encoder_and_decoder_features():
    torch.manual_seed(0)
    ngf, size = 4, 32
    gen = UnetGenerator(channels=3, out_channels=2, num_downs=5, ngf=ngf)
    assert gen.size_multiple == 32
    x = torch.randn(2, 3, size, size)
    # level k's up path takes its encoder feature (k's down output) joined with level k+1's up output
    down, up_in, up_out = {}, {}, {}

    def record(k: int):
        def hook(module, args, out) -> None:
            up_in[k], up_out[k] = args[0].shape, out.shape
        return hook

    for k, level in enumerate(gen.levels):
        level.down.register_forward_hook(lambda m, args, out, k=k: down.__setitem__(k, out.shape))
        level.up.register_forward_hook(record(k))
    y = gen(x)
    assert len(gen.levels) == 5  # four skips: one per level below the outermost
    encoder_widths = [ngf, 2 * ngf, 4 * ngf, 8 * ngf]
    for k, width in enumerate(encoder_widths):
        side = size // 2 ** (k + 1)
        assert down[k] == (2, width, side, side)
        assert up_out[k + 1] == (2, width, side, side)  # the decoder comes back to the encoder's shape
        assert up_in[k] == (2, 2 * width, side, side)
    assert y.shape == (2, 2, size, size)
    assert y.abs().max() <= 1 and y.std() > 0
    with pytest.raises(ValueError, match="multiples of 32"):
        gen(torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize("num_downs", [5, 7, 8])
def test_unet_dropout_only_in_the_intermediate_8ngf_levels(num_downs):
    ngf = 2
    gen = UnetGenerator(num_downs=num_downs, ngf=ngf)
    with_dropout = [k for k, level in enumerate(gen.levels) if any(isinstance(m, nn.Dropout) for m in level.modules())]
    assert with_dropout == list(range(4, num_downs - 1))
    assert len(with_dropout) == num_downs - 5
    for k in with_dropout:
        down_conv, up_conv = gen.levels[k].down[1], gen.levels[k].up[1]
        assert down_conv.in_channels == down_conv.out_channels == up_conv.out_channels == 8 * ngf
    plain = UnetGenerator(num_downs=num_downs, ngf=ngf, dropout=False)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())


def test_unet_needs_five_levels():
    with pytest.raises(ValueError, match="num_downs >= 5"):
        UnetGenerator(num_downs=4)


# --------------------------------------------------------------------------------------------------------
# PatchGAN discriminator


def test_patchgan_receptive_field_formula():
    assert [receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]
    assert PatchGANDiscriminator(ndf=2).receptive_field == 70


def test_patchgan_receptive_field_is_70_pixels_empirically():
    net = PatchGANDiscriminator(channels=1, ndf=2, n_layers=3, norm="none").double()
    for p in net.parameters():
        nn.init.constant_(p, 0.05)  # all positive: every input pixel in the field has a non-zero influence
    x = torch.rand(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    out = net(x)
    assert out.shape == (1, 1, 14, 14)
    i = j = out.size(-1) // 2
    out[0, 0, i, j].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    assert (x.grad[0, 0, rows.min():rows.max() + 1, cols.min():cols.max() + 1] != 0).all()  # a full window
    assert rows.min() > 0 and rows.max() < 127  # well inside the image: not cut by the border


def test_patchgan_scores_30x30_patches_at_256px():
    torch.manual_seed(0)
    net = PatchGANDiscriminator(channels=6, ndf=2, norm="batch")
    out = net(torch.randn(1, 6, 256, 256))
    assert out.shape == (1, 1, 30, 30)
    assert out.min() < 0 < out.max()  # raw scores, no sigmoid
