"""The penalties of the Wasserstein objectives: WGAN-GP's gradient penalty (a linear critic's known gradient
norm, image-shaped inputs, its gradient in the critic's weights, the interpolates between real and fake, the
weighted penalty of WassersteinGPLoss) and WGAN's weight clipping after each D step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_cli.losses.adversarial import WassersteinGPLoss, WassersteinLoss
from gan_cli.losses.penalties import clip_weights_, gradient_penalty

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------------------
# penalties


def _linear_critic(norm: float, dim: int = 5, seed: int = 0) -> tuple[nn.Parameter, callable]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g, dtype=torch.float64)
    w = nn.Parameter(w / w.norm() * norm)
    return w, lambda x: x.flatten(1) @ w


@pytest.mark.parametrize("norm,expected", [(1.0, 0.0), (3.0, 4.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(norm, expected):
    torch.manual_seed(0)
    _, critic = _linear_critic(norm)
    real, fake = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 5, dtype=torch.float64)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected, abs=1e-9)


def test_gradient_penalty_on_image_shaped_inputs():
    torch.manual_seed(0)
    _, critic = _linear_critic(3.0, dim=2 * 3 * 3)
    real, fake = torch.randn(8, 2, 3, 3, dtype=torch.float64), torch.randn(8, 2, 3, 3, dtype=torch.float64)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(4.0, abs=1e-9)


def test_gradient_penalty_is_differentiable_in_the_critic():
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; for ||w|| = 3: 4/3 w
    torch.manual_seed(0)
    w, critic = _linear_critic(3.0)
    real = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    gradient_penalty(critic, real, fake).backward()
    assert torch.allclose(w.grad, 4.0 / 3.0 * w.detach(), atol=1e-9)
    # inputs are detached: the penalty trains D only, not G
    assert real.grad is None and fake.grad is None


def test_gradient_penalty_uses_interpolates_between_real_and_fake():
    torch.manual_seed(0)
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return (x**2).sum(1)  # gradient 2x: its norm depends on where it is evaluated

    real, fake = torch.zeros(64, 1), torch.ones(64, 1)
    penalty = gradient_penalty(critic, real, fake)
    points = seen[0].squeeze(1)
    assert ((points >= 0) & (points <= 1)).all()
    assert points.std() > 0.1  # one random alpha per sample
    assert penalty.item() == pytest.approx(((2 * points - 1) ** 2).mean().item(), rel=1e-5)


def test_wgan_gp_d_penalty_is_weighted_gradient_penalty():
    torch.manual_seed(0)
    _, critic = _linear_critic(3.0)
    real, fake = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    assert WassersteinGPLoss().d_penalty(critic, real, fake).item() == pytest.approx(40.0, abs=1e-8)
    assert WassersteinGPLoss(gp_weight=2.5).d_penalty(critic, real, fake).item() == pytest.approx(10.0, abs=1e-8)
    _, unit = _linear_critic(1.0)
    assert WassersteinGPLoss().d_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-8)


def _big_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))
        net[2].weight[0, 0] = 0.005  # already inside the interval: left alone
    return net


def test_clip_weights_clamps_every_parameter():
    net = _big_net()
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights_(net, 0.01)
    for old, new in zip(before, net.parameters()):
        assert new.abs().max().item() <= 0.01 + 1e-12
        assert torch.equal(new.detach(), old.clamp(-0.01, 0.01))
    assert net[2].weight[0, 0].item() == pytest.approx(0.005)
    assert (net[0].weight.abs() == 0.01).any()


def test_wasserstein_after_d_step_clips():
    net = _big_net()
    WassersteinLoss(clip_value=0.05).after_d_step(net)
    params = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert params.abs().max().item() == pytest.approx(0.05)
    WassersteinLoss().after_d_step(net)
    params = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert params.abs().max().item() == pytest.approx(0.01)
