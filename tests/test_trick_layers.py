"""The GAN trick layers: minibatch discrimination and virtual batch norm (Salimans et al. 2016) and
DiffAugment (Zhao et al. 2020)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gan_cli.nets.trick_layers import (DiffAugment, MinibatchDiscrimination, VirtualBatchNorm, random_brightness,
                                       random_contrast, random_cutout, random_saturation, random_translation,
                                       reference_pass)

pytestmark = pytest.mark.usefixtures("one_thread")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=seeded(seed))


def images(n: int, channels: int = 3, size: int = 16, seed: int = 0) -> Tensor:
    """A batch in the data range [-1, 1]."""
    return torch.rand(n, channels, size, size, generator=seeded(seed)) * 2 - 1


# --------------------------------------------------------------------------------------------------------
# Minibatch discrimination


def mbd_layer(in_features: int = 6, num_kernels: int = 4, kernel_dim: int = 3) -> MinibatchDiscrimination:
    torch.manual_seed(0)
    return MinibatchDiscrimination(in_features, num_kernels, kernel_dim)


def test_minibatch_discrimination_shape_and_passthrough():
    layer = MinibatchDiscrimination(in_features=12)  # defaults: 100 kernels of dimension 5
    assert layer.T.shape == (12, 100, 5)
    assert layer.out_features == 112
    f = randn(7, 12)
    out = layer(f)
    assert out.shape == (7, 112)
    assert torch.equal(out[:, :12], f)
    assert layer(randn(5, 3, 2, 2)).shape == (5, 112)  # flattened, as in the authors' code
    with pytest.raises(ValueError, match="12 features"):
        layer(randn(5, 13))


def test_minibatch_discrimination_matches_the_paper_formula_without_the_self_term():
    layer = mbd_layer()
    f = randn(5, 6)
    m = torch.einsum("na,abc->nbc", f, layer.T.detach())
    expected = torch.zeros(5, 4)
    for i in range(5):
        for j in range(5):
            if i != j:
                expected[i] += torch.exp(-(m[i] - m[j]).abs().sum(dim=1))
    assert torch.allclose(layer(f)[:, 6:], expected, atol=1e-5)


def test_minibatch_discrimination_identical_samples_are_closest():
    layer = mbd_layer()
    n = 8
    identical = randn(1, 6).expand(n, 6)
    spread = randn(n, 6, seed=1) * 20
    o_identical = layer(identical)[:, 6:]
    o_spread = layer(spread)[:, 6:]
    assert torch.allclose(o_identical, torch.full((n, 4), n - 1.0))  # the maximum: every other is identical
    assert (o_spread < 0.5).all()
    # in one batch: four copies of one sample and four spread ones; the copies are the closer ones
    mixed = layer(torch.cat([identical[:4], spread[:4]]))[:, 6:]
    assert mixed[:4].min() > mixed[4:].max()
    assert torch.equal(layer(randn(1, 6))[:, 6:], torch.zeros(1, 4))  # a batch of one has no neighbours


def test_minibatch_discrimination_gradients_reach_T():
    layer = mbd_layer()
    f = randn(6, 6).requires_grad_()
    layer(f)[:, 6:].sum().backward()
    assert layer.T.grad is not None and layer.T.grad.abs().sum() > 0
    assert f.grad is not None and f.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------------
# Virtual batch norm


@pytest.mark.parametrize("shape", [(32, 4), (16, 4, 5, 5)])
def test_vbn_output_of_an_example_does_not_depend_on_the_rest_of_the_batch(shape):
    vbn = VirtualBatchNorm(4)
    vbn.set_reference(randn(*shape) * 3 + 1)
    x = randn(6, *shape[1:], seed=1)
    together = vbn(x)
    alone = torch.cat([vbn(x[i:i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert not torch.allclose(together, nn.functional.batch_norm(x, None, None, training=True), atol=1e-2)


@pytest.mark.parametrize("shape", [(32, 4), (16, 4, 5, 5)])
def test_vbn_uses_the_statistics_of_the_reference_batch_plus_the_example(shape):
    """The 1 / (R + 1) mixing is batch norm over the reference batch with the example added to it."""
    vbn = VirtualBatchNorm(4, eps=1e-5)
    ref, x = randn(*shape) * 2 - 1, randn(3, *shape[1:], seed=1) * 5
    vbn.set_reference(ref)
    for i in range(3):
        joined = torch.cat([ref, x[i:i + 1]])
        expected = nn.functional.batch_norm(joined, None, None, training=True, eps=1e-5)[-1:]
        assert torch.allclose(vbn(x[i:i + 1]), expected, atol=1e-5)


@pytest.mark.parametrize("shape", [(256, 3), (64, 3, 6, 6)])
def test_vbn_normalises_the_reference_batch_to_zero_mean_unit_variance(shape):
    ref = randn(*shape) * torch.tensor([5.0, 0.1, 2.0]).view(1, 3, *[1] * (len(shape) - 2)) + 7
    vbn = VirtualBatchNorm(3)
    vbn.set_reference(ref)
    out = vbn(ref)
    dims = [0, *range(2, len(shape))]
    # each example mixes itself in with weight 1/(R+1), so only approximately: an (N, C) example counts as a
    # whole extra sample, which widens the statistics of outlying examples and shrinks the variance by O(1/R)
    assert torch.allclose(out.mean(dim=dims), torch.zeros(3), atol=0.05)
    assert torch.allclose(out.var(dim=dims, unbiased=False), torch.ones(3), atol=0.05)


def test_vbn_learned_scale_and_shift():
    vbn = VirtualBatchNorm(2)
    ref = randn(50, 2)
    vbn.set_reference(ref)
    plain = vbn(ref)
    with torch.no_grad():
        vbn.weight.copy_(torch.tensor([2.0, 3.0]))
        vbn.bias.copy_(torch.tensor([-1.0, 4.0]))
    assert torch.allclose(vbn(ref), plain * torch.tensor([2.0, 3.0]) + torch.tensor([-1.0, 4.0]), atol=1e-6)
    vbn(ref).sum().backward()
    assert vbn.weight.grad is not None and vbn.bias.grad is not None


def test_vbn_raises_before_a_reference_is_set_and_on_a_wrong_channel_count():
    vbn = VirtualBatchNorm(4)
    with pytest.raises(RuntimeError, match="set_reference"):
        vbn(randn(2, 4))
    with pytest.raises(ValueError, match=r"\(N, 4, \.\.\.\)"):
        vbn.set_reference(randn(8, 3))
    vbn.set_reference(randn(8, 4))
    with pytest.raises(ValueError, match=r"\(N, 4, \.\.\.\)"):
        vbn(randn(2, 5))


def test_vbn_reference_survives_a_state_dict_round_trip():
    vbn = VirtualBatchNorm(3)
    vbn.set_reference(randn(10, 3, 4, 4) + 2)
    with torch.no_grad():
        vbn.weight.mul_(1.5)
    state = vbn.state_dict()
    assert {"reference_mean", "reference_mean_sq", "reference_size"} <= set(state)
    restored = VirtualBatchNorm(3)
    restored.load_state_dict(state)
    x = randn(4, 3, 4, 4, seed=1)
    assert restored.has_reference
    assert torch.equal(restored(x), vbn(x))


def test_reference_pass_sets_every_layer_in_order():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), VirtualBatchNorm(8), nn.ReLU(), nn.Linear(8, 6), VirtualBatchNorm(6))
    z_ref = randn(40, 5)
    with reference_pass(net):
        out = net(z_ref)
    assert not net[1].capturing and not net[4].capturing
    # by hand: the second layer's reference is its input once the first layer normalises with its own
    first, second = VirtualBatchNorm(8), VirtualBatchNorm(6)
    first.set_reference(net[0](z_ref))
    second.set_reference(net[3](net[2](first(net[0](z_ref)))))
    for layer, by_hand in ((net[1], first), (net[4], second)):
        assert int(layer.reference_size) == 40
        assert torch.allclose(layer.reference_mean, by_hand.reference_mean, atol=1e-6)
        assert torch.allclose(layer.reference_mean_sq, by_hand.reference_mean_sq, atol=1e-6)
    assert torch.allclose(out.mean(dim=0), torch.zeros(6), atol=0.05)
    assert torch.allclose(net(z_ref), out)  # afterwards the same statistics, no longer re-set


# --------------------------------------------------------------------------------------------------------
# DiffAugment


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_diffaugment_keeps_shape_and_dtype_of_real_and_fake_batches(dtype):
    augment = DiffAugment()
    real = images(8, size=32).to(dtype)
    fake = images(5, size=32, seed=1).to(dtype)
    for batch in (real, fake):
        out = augment(batch, seeded())
        assert out.shape == batch.shape and out.dtype == batch.dtype
        assert not torch.equal(out, batch)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augment(real[0])


def test_diffaugment_is_deterministic_given_a_generator_and_draws_per_sample():
    augment = DiffAugment()
    x = images(1, size=16).expand(6, 3, 16, 16)  # six copies of one image
    out = augment(x, seeded(3))
    assert torch.equal(out, augment(x, seeded(3)))
    assert not torch.equal(out, augment(x, seeded(4)))
    assert len({tuple(sample.flatten().tolist()) for sample in out}) == 6  # each copy augmented differently


def test_diffaugment_gradients_flow_to_the_input():
    x = images(4).requires_grad_()
    DiffAugment()(x, seeded()).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # cutout alone: the gradient is the mask, 1 where the pixel survives and 0 in the hole
    ones = torch.ones(4, 3, 16, 16, requires_grad=True)
    out = DiffAugment("cutout")(ones, seeded())
    out.sum().backward()
    assert torch.equal(ones.grad, out.detach())


def test_empty_policy_is_the_identity_and_unknown_names_are_rejected():
    x = images(3)
    assert torch.equal(DiffAugment("")(x), x)
    with pytest.raises(ValueError, match="valid names: color, translation, cutout") as error:
        DiffAugment("color,flip")
    assert "'flip'" in str(error.value)


def shifted(image: Tensor, dy: int, dx: int) -> Tensor:
    """image (..., H, W) with its content moved down dy and right dx pixels, zeros filling the border."""
    h, w = image.shape[-2:]
    out = torch.zeros_like(image)
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_translation_shifts_content_by_at_most_an_eighth_with_zero_padding():
    n, size = 64, 16  # shifts of up to 16 / 8 = 2 pixels
    marker = torch.full((n, 1, size, size), -1.0)
    marker[:, :, 8, 8] = 1.0  # one bright pixel on black
    content = images(n, channels=2, size=size)
    out = random_translation(torch.cat([marker, content], dim=1), seeded())
    seen = set()
    for i in range(n):
        assert (out[i, 0] == 1.0).sum() == 1
        row, col = divmod(int(out[i, 0].argmax()), size)
        dy, dx = row - 8, col - 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        assert torch.equal(out[i, 1:], shifted(content[i], dy, dx))  # all channels moved alike, 0 filled in
        seen.add((dy, dx))
    assert {dy for dy, _ in seen} == {dx for _, dx in seen} == {-2, -1, 0, 1, 2}


def test_cutout_zeroes_a_square_of_half_the_size_clipped_at_the_border():
    n, size, side = 64, 16, 8
    black = torch.full((n, 3, size, size), -1.0)  # the darkest [-1, 1] image
    out = random_cutout(black, seeded())
    full_squares = clipped_height = clipped_width = 0
    for sample in out:
        # "zero" is the tensor value 0 (mid-grey in [-1, 1] data), not black; elsewhere the image is untouched
        hole = sample[0] == 0
        assert torch.equal(sample == 0, hole.expand(3, -1, -1))
        assert (sample[:, ~hole] == -1).all()
        rows, cols = hole.any(dim=1), hole.any(dim=0)
        assert torch.equal(hole, rows[:, None] & cols[None, :])  # one axis-aligned rectangle
        height, width = int(rows.sum()), int(cols.sum())
        assert side // 2 <= height <= side and side // 2 <= width <= side
        full_squares += height == width == side
        clipped_height += height < side
        clipped_width += width < side
    # the centre is uniform over the whole image, as in the reference, so many holes run off the border
    assert full_squares > n // 8 and clipped_height > n // 4 and clipped_width > n // 4


def test_color_changes_values_but_not_shape():
    x = images(6)
    out = DiffAugment("color")(x, seeded())
    assert out.shape == x.shape
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every sample changed


def test_brightness_adds_one_per_sample_offset_in_the_paper_range():
    grey = torch.linspace(-0.5, 0.5, 32).view(32, 1, 1, 1).expand(32, 3, 8, 8)
    for out in (random_brightness(grey, seeded()), DiffAugment("color")(grey, seeded())):
        # on a flat grey image saturation and contrast do nothing, so colour is brightness alone
        offset = out - grey
        assert torch.allclose(offset, offset[:, :1, :1, :1].expand_as(offset), atol=1e-6)
        assert offset.min() >= -0.5 and offset.max() < 0.5
        assert offset[:, 0, 0, 0].std() > 0.2  # drawn per sample, spread over the range


def per_sample_factor(before: Tensor, after: Tensor, center: Tensor) -> Tensor:
    """The factor each sample's deviation from `center` was scaled by (one value per sample, asserted)."""
    old, new = before - center, after - center
    factor = (old * new).sum(dim=(1, 2, 3)) / old.square().sum(dim=(1, 2, 3))  # least squares
    assert torch.allclose(new, factor.view(-1, 1, 1, 1) * old, atol=1e-5)
    return factor


def test_saturation_scales_around_the_channel_mean_by_up_to_two():
    x = images(32)
    out = random_saturation(x, seeded())
    center = x.mean(dim=1, keepdim=True)
    assert torch.allclose(out.mean(dim=1, keepdim=True), center, atol=1e-6)
    factor = per_sample_factor(x, out, center)
    assert factor.min() >= 0 and factor.max() < 2 and factor.max() - factor.min() > 1
    gray = images(4, channels=1)
    assert torch.allclose(random_saturation(gray, seeded()), gray)  # one channel: a no-op


def test_contrast_scales_around_the_image_mean_between_half_and_one_and_a_half():
    x = images(32)
    out = random_contrast(x, seeded())
    center = x.mean(dim=(1, 2, 3), keepdim=True)
    factor = per_sample_factor(x, out, center)
    assert factor.min() >= 0.5 and factor.max() < 1.5 and factor.max() - factor.min() > 0.5
