"""Goodfellow et al. 2014's theory on a 1-D toy problem, through the discriminator loss of the papers: a trained
D approaches the optimal D* = p_data / (p_data + p_g), no D beats the optimal value -log 4 when p_g = p_data,
and the value at D* is -log 4 + 2 JSD(p_data || p_g)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_cli.losses import adversarial as adv
from gan_cli.losses.adversarial import OPTIMAL_VALUE
from tests.losses_helpers import bce_d_loss

pytestmark = pytest.mark.usefixtures("one_thread")


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
