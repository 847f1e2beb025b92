"""The adversarial objectives and penalties: hand-computed values, gradients, schedules, and
Goodfellow et al. 2014's theory on a 1-D toy problem (D* = p_data / (p_data + p_g), V = -log 4 + 2 JSD)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_cli.losses import adversarial as adv
from gan_cli.losses.adversarial import (
    OPTIMAL_VALUE,
    AdversarialLoss,
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinGPLoss,
    WassersteinLoss,
    bce_d_loss,
    hinge_d_loss,
    least_squares_d_loss,
    least_squares_g_loss,
    non_saturating_g_loss,
    saturating_g_loss,
    wasserstein_d_loss,
    wasserstein_g_loss,
)
from gan_cli.losses.penalties import clip_weights_, gradient_penalty

LOG2 = math.log(2.0)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------------------
# the loss functions, against values computed by hand


def test_bce_d_loss_at_zero_logits_is_2_log_2():
    assert bce_d_loss(t(0.0, 0.0, 0.0), t(0.0, 0.0)).item() == pytest.approx(2 * LOG2)


def test_bce_d_loss_hand_values():
    # -log sigmoid(1) - log(1 - sigmoid(-0.5)) = softplus(-1) + softplus(-0.5)
    assert bce_d_loss(t(1.0), t(-0.5)).item() == pytest.approx(softplus(-1.0) + softplus(-0.5))
    # means over each batch, then summed
    expected = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(3.0) + softplus(0.0)) / 2
    assert bce_d_loss(t(2.0, -1.0), t(3.0, 0.0)).item() == pytest.approx(expected)
    # a perfect discriminator has (almost) zero loss, a perfectly wrong one a large loss
    assert bce_d_loss(t(30.0), t(-30.0)).item() == pytest.approx(0.0, abs=1e-12)
    assert bce_d_loss(t(-30.0), t(30.0)).item() == pytest.approx(60.0, rel=1e-6)


def test_bce_d_loss_is_the_negated_value_function():
    real, fake = t(0.3, -1.2, 2.0), t(-0.7, 0.1)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    value = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
    assert bce_d_loss(real, fake).item() == pytest.approx(-value.item(), rel=1e-12)


def test_saturating_g_loss_hand_values():
    # E[log(1 - D(G(z)))]: log(1/2) at logit 0; log(1 - sigmoid(l)) = -softplus(l)
    assert saturating_g_loss(t(0.0)).item() == pytest.approx(-LOG2)
    assert saturating_g_loss(t(1.0, -2.0)).item() == pytest.approx(-(softplus(1.0) + softplus(-2.0)) / 2)
    fake = t(0.4, -0.9)
    assert saturating_g_loss(fake).item() == pytest.approx(torch.log(1 - torch.sigmoid(fake)).mean().item())


def test_non_saturating_g_loss_hand_values():
    # -E[log D(G(z))]: log 2 at logit 0; -log sigmoid(l) = softplus(-l)
    assert non_saturating_g_loss(t(0.0)).item() == pytest.approx(LOG2)
    assert non_saturating_g_loss(t(1.0, -2.0)).item() == pytest.approx((softplus(-1.0) + softplus(2.0)) / 2)
    fake = t(0.4, -0.9)
    assert non_saturating_g_loss(fake).item() == pytest.approx(-torch.log(torch.sigmoid(fake)).mean().item())


def test_least_squares_losses_hand_values():
    # the CycleGAN paper's form: plain mean squared errors to the targets 1 (real) and 0 (fake)
    assert least_squares_d_loss(t(1.0, 1.0), t(0.0, 0.0)).item() == 0.0
    # mean((0-1)^2, (2-1)^2) + mean(1^2, (-1)^2) = 1 + 1
    assert least_squares_d_loss(t(0.0, 2.0), t(1.0, -1.0)).item() == pytest.approx(2.0)
    assert least_squares_d_loss(t(3.0), t(2.0)).item() == pytest.approx(4 + 4)
    assert least_squares_d_loss(t(0.5), t(0.5)).item() == pytest.approx(0.25 + 0.25)
    assert least_squares_g_loss(t(1.0, 1.0)).item() == 0.0
    assert least_squares_g_loss(t(3.0, -1.0)).item() == pytest.approx(4.0)
    assert least_squares_g_loss(t(0.0)).item() == pytest.approx(1.0)


@pytest.mark.parametrize("loss", [MinimaxLoss(), NonSaturatingLoss(), LeastSquaresLoss(), WassersteinLoss(),
                                  WassersteinGPLoss(), HingeLoss()], ids=lambda loss: type(loss).__name__)
def test_d_loss_is_the_sum_of_its_real_and_fake_terms(loss):
    real, fake = t(-0.5, -1.2, 0.2), t(0.4, 0.8, 0.1)
    assert loss.d_loss(real, fake).item() == pytest.approx(loss.d_real_loss(real).item() + loss.d_fake_loss(fake).item())
    # D pays less when it scores reals higher and fakes lower (from scores on the wrong side of its targets)
    assert loss.d_real_loss(real + 0.1).item() < loss.d_real_loss(real).item()
    assert loss.d_fake_loss(fake - 0.1).item() < loss.d_fake_loss(fake).item()


def test_wasserstein_losses_hand_values():
    # critic loss E[D(G(z))] - E[D(x)]
    assert wasserstein_d_loss(t(1.0, 3.0), t(0.5, -0.5)).item() == pytest.approx(-2.0)
    assert wasserstein_d_loss(t(-1.0), t(4.0)).item() == pytest.approx(5.0)
    assert wasserstein_g_loss(t(1.0, 2.0, 3.0)).item() == pytest.approx(-2.0)
    assert wasserstein_g_loss(t(-4.0)).item() == pytest.approx(4.0)


def test_hinge_d_loss_hand_values():
    assert hinge_d_loss(t(2.0, 2.0), t(-2.0, -2.0)).item() == 0.0  # both margins satisfied
    assert hinge_d_loss(t(0.0), t(0.0)).item() == pytest.approx(2.0)
    # mean(relu(0.5), relu(-2)) + mean(relu(1.5), relu(-2)) = 0.25 + 0.75
    assert hinge_d_loss(t(0.5, 3.0), t(0.5, -3.0)).item() == pytest.approx(1.0)
    assert hinge_d_loss(t(-1.0), t(1.0)).item() == pytest.approx(4.0)


# --------------------------------------------------------------------------------------------------------
# the loss classes


def _grad_of(loss_fn, logit: float) -> float:
    x = torch.tensor([logit], requires_grad=True)
    loss_fn(x).backward()
    return x.grad.item()


def test_minimax_g_loss_saturates_and_non_saturating_does_not():
    # early in training D confidently rejects fakes: a very negative logit
    saturating = _grad_of(MinimaxLoss().g_loss, -15.0)
    non_saturating = _grad_of(NonSaturatingLoss().g_loss, -15.0)
    assert abs(saturating) < 1e-5
    assert abs(non_saturating) == pytest.approx(1.0, abs=1e-5)
    # both push the fake logit up (minimising the loss raises D(G(z)))
    assert saturating < 0 and non_saturating < 0
    # both are the functions of the paper
    fake = torch.tensor([0.3, -2.0])
    assert MinimaxLoss().g_loss(fake).item() == pytest.approx(saturating_g_loss(fake).item())
    assert NonSaturatingLoss().g_loss(fake).item() == pytest.approx(non_saturating_g_loss(fake).item())


def test_loss_classes_use_their_functions():
    real, fake = torch.tensor([0.7, -0.4, 1.5]), torch.tensor([-0.2, 0.9])
    pairs = [
        (MinimaxLoss(), bce_d_loss, saturating_g_loss),
        (NonSaturatingLoss(), bce_d_loss, non_saturating_g_loss),
        (LeastSquaresLoss(), least_squares_d_loss, least_squares_g_loss),
        (WassersteinLoss(), wasserstein_d_loss, wasserstein_g_loss),
        (WassersteinGPLoss(), wasserstein_d_loss, wasserstein_g_loss),
        (HingeLoss(), hinge_d_loss, wasserstein_g_loss),
    ]
    for loss, d_fn, g_fn in pairs:
        assert loss.d_loss(real, fake).item() == pytest.approx(d_fn(real, fake).item()), type(loss).__name__
        assert loss.g_loss(fake).item() == pytest.approx(g_fn(fake).item()), type(loss).__name__


def test_d_steps_defaults_follow_the_papers():
    assert MinimaxLoss().d_steps == 1  # k = 1 in Goodfellow et al.'s experiments
    assert NonSaturatingLoss().d_steps == 1
    assert LeastSquaresLoss().d_steps == 1
    assert HingeLoss().d_steps == 1
    assert WassersteinLoss().d_steps == 5  # n_critic = 5
    assert WassersteinGPLoss().d_steps == 5
    assert WassersteinLoss().clip_value == 0.01
    assert WassersteinGPLoss().gp_weight == 10.0
    assert MinimaxLoss(d_steps=3).d_steps == 3
    assert WassersteinLoss(d_steps=2).d_steps == 2


@pytest.mark.parametrize("cls", [MinimaxLoss, NonSaturatingLoss, LeastSquaresLoss, WassersteinLoss,
                                 WassersteinGPLoss, HingeLoss])
@pytest.mark.parametrize("steps", [0, -1])
def test_d_steps_below_one_raises(cls, steps):
    with pytest.raises(ValueError, match="d_steps"):
        cls(d_steps=steps)


def test_score_is_a_probability_only_for_probabilistic_losses():
    scores = torch.tensor([-3.0, 0.0, 2.0])
    for loss in (MinimaxLoss(), NonSaturatingLoss()):
        assert loss.probabilistic
        out = loss.score(scores)
        assert torch.allclose(out, torch.sigmoid(scores))
        assert out[1].item() == pytest.approx(0.5)
        assert ((out > 0) & (out < 1)).all()
    for loss in (LeastSquaresLoss(), WassersteinLoss(), WassersteinGPLoss(), HingeLoss()):
        assert not loss.probabilistic
        assert torch.equal(loss.score(scores), scores)


def test_base_defaults_have_no_penalty_and_no_hook():
    net = nn.Linear(2, 1)
    before = [p.detach().clone() for p in net.parameters()]
    for loss in (MinimaxLoss(), LeastSquaresLoss(), HingeLoss(), WassersteinGPLoss()):
        loss.after_d_step(net)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    x = torch.randn(4, 2)
    for loss in (MinimaxLoss(), NonSaturatingLoss(), LeastSquaresLoss(), WassersteinLoss(), HingeLoss()):
        assert loss.d_penalty(net, x, x) is None
    with pytest.raises(NotImplementedError):
        AdversarialLoss().d_loss(x, x)


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


# --------------------------------------------------------------------------------------------------------
# Goodfellow et al. 2014 on a 1-D toy problem: p_data = N(0, 1), p_g = N(MU_G, 1)

MU_G = 1.5


def _normal_pdf(x: torch.Tensor, mu: float) -> torch.Tensor:
    return torch.exp(-0.5 * (x - mu) ** 2) / math.sqrt(2 * math.pi)


def _train_discriminator(mu_g: float, steps: int = 400, batch: int = 256, seed: int = 0) -> nn.Module:
    """Algorithm 1's inner loop: minimise bce_d_loss on fresh samples of p_data and p_g each step."""
    torch.manual_seed(seed)
    disc = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(steps):
        real, fake = torch.randn(batch, 1), torch.randn(batch, 1) + mu_g
        loss = bce_d_loss(disc(real).squeeze(1), disc(fake).squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return disc.eval()


def test_trained_discriminator_approaches_the_optimal_d():
    disc = _train_discriminator(MU_G)
    x = torch.linspace(-1.0, 2.5, 141)
    with torch.no_grad():
        d = torch.sigmoid(disc(x[:, None]).squeeze(1))
    p_data, p_g = _normal_pdf(x, 0.0), _normal_pdf(x, MU_G)
    d_star = p_data / (p_data + p_g)
    assert (d - d_star).abs().max().item() < 0.06
    # and a discriminator that has not been trained is far from it
    torch.manual_seed(0)
    untrained = _train_discriminator(MU_G, steps=0)
    with torch.no_grad():
        d0 = torch.sigmoid(untrained(x[:, None]).squeeze(1))
    assert (d0 - d_star).abs().max().item() > 0.2


def test_optimal_value_is_minus_log_4():
    half = torch.logit(torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert -bce_d_loss(half, half).item() == pytest.approx(-math.log(4.0), abs=1e-12)
    assert OPTIMAL_VALUE == pytest.approx(-math.log(4.0), abs=1e-15)
    assert adv.OPTIMAL_VALUE == OPTIMAL_VALUE


def test_discriminator_cannot_beat_minus_log_4_when_p_g_equals_p_data():
    disc = _train_discriminator(0.0)
    g = torch.Generator().manual_seed(123)
    real, fake = torch.randn(200_000, 1, generator=g), torch.randn(200_000, 1, generator=g)
    with torch.no_grad():
        value = -bce_d_loss(disc(real).squeeze(1), disc(fake).squeeze(1)).item()
    assert value <= OPTIMAL_VALUE + 2e-3
    assert value == pytest.approx(OPTIMAL_VALUE, abs=0.01)


def _jsd(mu_g: float) -> float:
    """Jensen-Shannon divergence of N(0, 1) and N(mu_g, 1) by integration on a fine grid."""
    x = torch.linspace(-12.0, 12.0 + mu_g, 400_001, dtype=torch.float64)
    p, q = _normal_pdf(x, 0.0), _normal_pdf(x, mu_g)
    m = (p + q) / 2
    integrand = 0.5 * p * torch.log(p / m) + 0.5 * q * torch.log(q / m)
    return torch.trapezoid(integrand, x).item()


@pytest.mark.parametrize("mu_g", [0.0, 0.5, 1.5, 3.0])
def test_value_at_optimal_d_is_minus_log_4_plus_2_jsd(mu_g):
    # E_data[log D*] + E_g[log(1 - D*)] through the loss function, with the expectations taken on
    # quantile samples of each distribution (deterministic, accurate); D* has the logit log p_data/p_g.
    n = 200_000
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    std_normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    real, fake = std_normal.icdf(u), std_normal.icdf(u) + mu_g

    def optimal_logit(x: torch.Tensor) -> torch.Tensor:
        return torch.log(_normal_pdf(x, 0.0)) - torch.log(_normal_pdf(x, mu_g))

    value = -bce_d_loss(optimal_logit(real), optimal_logit(fake)).item()
    jsd = _jsd(mu_g)
    assert value == pytest.approx(OPTIMAL_VALUE + 2 * jsd, abs=1e-4)
    if mu_g > 0:
        assert jsd > 0.01 and value > OPTIMAL_VALUE + 0.02  # G is not optimal: the value is higher
    assert jsd <= math.log(2.0)
