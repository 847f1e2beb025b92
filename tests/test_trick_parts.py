"""The building blocks of the GAN tricks, against hand-computed values: the R1 penalty (Mescheder et al.
2018), feature matching, historical averaging and one-sided label smoothing (Salimans et al. 2016), and
spectral normalisation (Miyato et al. 2018)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gan_cli.losses.adversarial import bce_real_loss
from gan_cli.losses.improved import HistoricalAverage, feature_matching_loss, one_sided_smoothing
from gan_cli.losses.penalties import r1_penalty
from gan_cli.nets import DCGANDiscriminator, DCGANGenerator
from gan_cli.nets.spectral import apply_spectral_norm


def t(*rows) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# --- R1 ------------------------------------------------------------------------------------------------
def test_r1_of_a_linear_critic_is_the_squared_norm_of_its_weight():
    # D(x) = w . x has gradient w at every x, so E||grad D||^2 = ||w||^2 = 1 + 4 + 4 = 9
    w = nn.Parameter(t(1.0, -2.0, 0.0, 2.0))
    real = torch.randn(8, 1, 2, 2, dtype=torch.float64)
    assert r1_penalty(lambda x: x.flatten(1) @ w, real).item() == pytest.approx(9.0, abs=1e-12)


def test_r1_of_a_quadratic_critic_is_evaluated_at_the_real_points():
    # D(x) = sum x^2 has gradient 2x: ||2x||^2 is 4 * (1 + 4) = 20 for the first sample, 4 * 9 = 36 for the second
    real = t([1.0, 2.0], [3.0, 0.0])
    assert r1_penalty(lambda x: (x**2).sum(1), real).item() == pytest.approx(28.0, abs=1e-12)


def test_r1_backpropagates_into_the_critic_and_not_into_the_data():
    # d/dW ||W||^2 = 2W for a linear critic
    torch.manual_seed(0)
    critic = nn.Linear(3, 1).double()
    real = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    r1_penalty(critic, real).backward()
    assert torch.allclose(critic.weight.grad, 2 * critic.weight.detach(), atol=1e-12)
    assert critic.bias.grad is None or torch.all(critic.bias.grad == 0)
    assert real.grad is None


# --- feature matching ---------------------------------------------------------------------------------
def test_feature_matching_is_zero_for_equal_means():
    real, fake = t([1.0, 2.0], [3.0, 4.0]), t([3.0, 2.0], [1.0, 4.0], [2.0, 3.0])
    assert feature_matching_loss(real, fake).item() == pytest.approx(0.0, abs=1e-12)


def test_feature_matching_of_a_shift_is_its_squared_norm():
    torch.manual_seed(0)
    real = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    shift = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    loss = feature_matching_loss(real, real + shift)
    assert loss.item() == pytest.approx((shift**2).sum().item(), rel=1e-12)


def test_feature_matching_trains_the_fake_side_only():
    # d/df_j ||m_r - m_f||^2 = -2 (m_r - m_f) / N for each of the N fake samples
    real = t([0.0, 0.0], [2.0, 4.0]).requires_grad_(True)  # mean (1, 2)
    fake = t([0.0, 1.0], [0.0, 1.0]).requires_grad_(True)  # mean (0, 1)
    feature_matching_loss(real, fake).backward()
    assert real.grad is None
    assert torch.allclose(fake.grad, t([-1.0, -1.0], [-1.0, -1.0]))


def test_feature_matching_rejects_features_of_different_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        feature_matching_loss(torch.zeros(2, 3), torch.zeros(2, 4))


# --- historical averaging -----------------------------------------------------------------------------
def _set(module: nn.Module, weight: list[float], bias: float) -> None:
    with torch.no_grad():
        module.weight.copy_(torch.tensor([weight]))
        module.bias.fill_(bias)


HISTORY = [([1.0, 2.0], 0.0), ([3.0, -2.0], 1.0), ([5.0, 3.0], 5.0)]  # means: weight (3, 1), bias 2


def _averaged(history=HISTORY) -> tuple[nn.Linear, HistoricalAverage]:
    module, average = nn.Linear(2, 1), HistoricalAverage()
    for weight, bias in history:
        _set(module, weight, bias)
        average.update(module)
    return module, average


def test_historical_average_is_the_mean_of_the_past_values():
    _, average = _averaged()
    assert average.count == 3
    assert torch.allclose(average.average["weight"], torch.tensor([[3.0, 1.0]]))
    assert torch.allclose(average.average["bias"], torch.tensor([2.0]))


def test_historical_penalty_is_the_squared_distance_to_the_mean():
    module, average = _averaged()
    _set(module, [4.0, -1.0], 5.0)
    # (4 - 3)^2 + (-1 - 1)^2 + (5 - 2)^2 = 1 + 4 + 9
    penalty = average.penalty(module)
    assert penalty.item() == pytest.approx(14.0, abs=1e-6)
    penalty.backward()  # d/dtheta = 2 (theta - mean)
    assert torch.allclose(module.weight.grad, torch.tensor([[2.0, -4.0]]))
    assert torch.allclose(module.bias.grad, torch.tensor([6.0]))


def test_historical_penalty_is_zero_before_any_update():
    assert HistoricalAverage().penalty(nn.Linear(2, 1)).item() == 0.0


def test_historical_average_resumes_exactly_from_its_state_dict():
    module, average = _averaged(HISTORY[:2])
    buffer = io.BytesIO()
    torch.save(average.state_dict(), buffer)
    buffer.seek(0)
    resumed = HistoricalAverage()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))

    for weight, bias in HISTORY[2:] + [([-1.0, 0.5], 3.0)]:
        _set(module, weight, bias)
        average.update(module)
        resumed.update(module)
    assert resumed.count == average.count == 4
    for name in ("weight", "bias"):
        assert torch.equal(resumed.average[name], average.average[name])
    _set(module, [0.0, 0.0], 0.0)
    assert torch.equal(resumed.penalty(module), average.penalty(module))


def test_historical_average_does_not_follow_later_changes_of_the_parameters():
    module, average = _averaged(HISTORY[:1])
    _set(module, [9.0, 9.0], 9.0)
    assert torch.equal(average.average["weight"], torch.tensor([[1.0, 2.0]]))


# --- one-sided label smoothing ------------------------------------------------------------------------
def test_one_sided_smoothing_is_cross_entropy_against_point_nine():
    logits = t(-2.0, 0.0, 1.5, 4.0)
    s = torch.sigmoid(logits)
    expected = -(0.9 * torch.log(s) + 0.1 * torch.log(1 - s)).mean()
    assert one_sided_smoothing(logits).item() == pytest.approx(expected.item(), rel=1e-12)


def test_one_sided_smoothing_is_minimal_at_the_smoothed_target():
    # the optimum of D on real data is sigmoid(logit) = 0.9 instead of an infinite logit
    logit = torch.tensor([math.log(0.9 / 0.1)], dtype=torch.float64, requires_grad=True)
    one_sided_smoothing(logit).backward()
    assert logit.grad.abs().item() < 1e-12
    unsmoothed = t(0.3, -1.0)
    assert one_sided_smoothing(unsmoothed, real_label=1.0).item() == pytest.approx(
        bce_real_loss(unsmoothed).item(), rel=1e-12)


# --- spectral normalisation ---------------------------------------------------------------------------
def _sigma(layer: nn.Module) -> float:
    """The largest singular value of the weight as torch's spectral norm sees it: output dimension first,
    the rest flattened (a transposed convolution stores (in, out, kh, kw))."""
    weight = layer.weight.detach()
    if isinstance(layer, nn.ConvTranspose2d):
        weight = weight.transpose(0, 1)
    return torch.linalg.matrix_norm(weight.reshape(weight.size(0), -1), ord=2).item()


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def _run(module: nn.Module, inputs: Tensor, passes: int = 5) -> Tensor:
    module.train()
    with torch.no_grad():
        for _ in range(passes):
            out = module(inputs)
    return out


def _assert_normalised(module: nn.Module) -> None:
    layers = _layers(module)
    assert layers and all(parametrize.is_parametrized(layer, "weight") for layer in layers)
    module.eval()  # read the weights with the vectors the training passes left, without another iteration
    for layer in layers:
        assert _sigma(layer) == pytest.approx(1.0, abs=0.1), layer


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(2, 5, 4, 2, 1)
        self.conv = nn.Conv2d(5, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 8 * 8, 4)
        with torch.no_grad():
            for layer in _layers(self):
                layer.weight.mul_(10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(self.up(x)).flatten(1))


def test_spectral_norm_bounds_every_layer_by_one():
    torch.manual_seed(0)
    toy = _Toy()
    assert all(_sigma(layer) > 2 for layer in _layers(toy))
    assert apply_spectral_norm(toy) is toy
    _run(toy, torch.randn(3, 2, 4, 4))
    _assert_normalised(toy)


def test_spectral_norm_wraps_each_layer_once_with_the_given_iterations():
    toy = apply_spectral_norm(apply_spectral_norm(_Toy(), n_power_iterations=3))
    for layer in _layers(toy):
        (norm,) = layer.parametrizations.weight
        assert norm.n_power_iterations == 3
    assert apply_spectral_norm(nn.Linear(2, 2)).parametrizations.weight[0].dim == 0
    assert apply_spectral_norm(nn.ConvTranspose2d(2, 3, 4)).parametrizations.weight[0].dim == 1


def test_spectral_norm_of_a_dcgan_discriminator_and_generator():
    torch.manual_seed(0)
    images = torch.randn(4, 1, 32, 32)
    disc = DCGANDiscriminator(channels=1, image_size=32, ndf=8)
    shape = disc(images).shape
    assert _run(apply_spectral_norm(disc), images).shape == shape == (4,)
    _assert_normalised(disc)

    gen = apply_spectral_norm(DCGANGenerator(latent_dim=8, channels=1, image_size=32, ngf=8))
    assert _run(gen, torch.randn(4, 8)).shape == (4, 1, 32, 32)
    _assert_normalised(gen)
