"""The adversarial objectives: D's and G's loss functions against values computed by hand from the papers, and
the loss classes built on them (their real and fake terms, gradients, D-step defaults and scores). The penalties
are in tests/test_penalties.py, Goodfellow et al. 2014's value function in tests/test_value_function.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_cli.losses.adversarial import (
    AdversarialLoss,
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinGPLoss,
    WassersteinLoss,
    least_squares_g_loss,
    non_saturating_g_loss,
    saturating_g_loss,
    wasserstein_g_loss,
)
from tests.losses_helpers import bce_d_loss, hinge_d_loss, least_squares_d_loss, wasserstein_d_loss

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
