"""The GAN trick layers of Salimans et al. 2016: minibatch discrimination (the paper's formula without the self
term, identical samples closest, gradients) and virtual batch norm (independent of the rest of the batch, the
reference batch's statistics, its state and reference pass). DiffAugment is in tests/test_diffaugment.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_cli.nets.trick_layers import MinibatchDiscrimination, VirtualBatchNorm, reference_pass
from tests.trick_layer_helpers import randn

pytestmark = pytest.mark.usefixtures("one_thread")


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
