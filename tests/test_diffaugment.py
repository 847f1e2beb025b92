"""DiffAugment (Zhao et al. 2020), the trick layer that augments real and fake batches alike: shape and dtype
kept, draws per sample from a generator, gradients to the input, the policy's names, and each transform
against its reference (translation by up to an eighth with zero padding, cutout of half the size, brightness,
saturation and contrast in the paper's ranges)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gan_cli.nets.trick_layers import (
    DiffAugment,
    random_brightness,
    random_contrast,
    random_cutout,
    random_saturation,
    random_translation,
)
from tests.trick_layer_helpers import images, seeded

pytestmark = pytest.mark.usefixtures("one_thread")


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
