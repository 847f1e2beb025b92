"""Text-to-image building blocks: the matching-aware discriminator's three pairs and loss values, conditioning
augmentation and its KL, both conditional discriminator styles (cgan's too, fully connected and convolutional),
and text_cgan's generator with conditioning augmentation and its captioned figure."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_cli.commands.train import train
from gan_cli.losses import LeastSquaresLoss, NonSaturatingLoss
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.text_to_image.base import captioned_rows
from gan_cli.models.text_to_image.conditioning import ConditioningAugmentation, kl_to_standard_normal
from gan_cli.models.text_to_image.matching import matching_discriminator_terms, matching_terms
from gan_cli.models.text_to_image.text_cgan_nets import TextDiscriminator, TextGenerator
from gan_cli.nets.conditional_heads import ConditionalHead
from gan_cli.nets.dcgan import DCGANDiscriminator
from gan_cli.nets.mlp import MLPDiscriminator
from tests.conftest import QUICK, SMALL

pytestmark = pytest.mark.usefixtures("one_thread")


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# --- the matching-aware discriminator ---------------------------------------------------------------
class SpyDiscriminator(nn.Module):
    """Records every (images, text) it is called on; its score is the first pixel plus the text's first entry."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images, text):
        self.calls.append((images.detach().clone(), text.detach().clone()))
        return self.scale * (images[:, 0, 0, 0] + text[:, 0])


def test_matching_aware_d_sees_all_three_pairs_and_pays_the_hand_computed_loss():
    module, spy = AdversarialModule(NonSaturatingLoss()), SpyDiscriminator()
    real, fake = torch.ones(2, 1, 4, 4), -torch.ones(2, 1, 4, 4)
    text, wrong = torch.full((2, 3), 0.5), torch.full((2, 3), -2.0)
    terms, s_r, s_f, s_w = matching_discriminator_terms(module, spy, real, fake, text, wrong)
    seen = {(float(images[0, 0, 0, 0]), float(t[0, 0])) for images, t in spy.calls}
    assert len(spy.calls) == 3 and seen == {(1.0, 0.5), (-1.0, 0.5), (1.0, -2.0)}  # (x,h), (G(z),h), (x,h_wrong)
    assert s_r.tolist() == [1.5, 1.5] and s_f.tolist() == [-0.5, -0.5] and s_w.tolist() == [-1.0, -1.0]
    # -log sigmoid(s_r) + (-log(1 - sigmoid(s_w)) - log(1 - sigmoid(s_f))) / 2
    terms = {name: float(value.detach()) for name, value in terms.items()}
    assert terms["real"] == pytest.approx(softplus(-1.5))
    assert terms["fake"] == pytest.approx((softplus(-1.0) + softplus(-0.5)) / 2)
    assert set(terms) == {"real", "fake"}


def test_matching_terms_use_the_objective_of_the_run():
    s_r, s_w, s_f = torch.tensor([0.0, 2.0]), torch.tensor([1.0]), torch.tensor([-1.0, 3.0])
    terms = matching_terms(LeastSquaresLoss(), s_r, s_w, s_f)  # E(s_r - 1)^2 + (E s_w^2 + E s_f^2) / 2
    assert float(terms["real"]) == pytest.approx(1.0)
    assert float(terms["fake"]) == pytest.approx((1.0 + 5.0) / 2)
    terms = matching_terms(NonSaturatingLoss(), torch.zeros(1), torch.tensor([math.log(3)]), torch.zeros(1))
    assert float(sum(terms.values())) == pytest.approx(math.log(2) + (math.log(4) + math.log(2)) / 2)


# --- conditioning augmentation ------------------------------------------------------------------------
def test_kl_to_standard_normal_hand_case_and_torch_distributions():
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # row 1: 1/2 (1 + 1 - 0 - 1) + 1/2 (0 + 2 - log 2 - 1); row 2: 0; the mean over the batch
    expected = (0.5 + 0.5 * (1 - math.log(2))) / 2
    assert float(kl_to_standard_normal(mu, logvar)) == pytest.approx(expected)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                                  torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert float(kl_to_standard_normal(mu, logvar)) == pytest.approx(float(reference), rel=1e-5)


def test_conditioning_augmentation_draws_c_from_its_gaussian():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(text_dim=3, condition_dim=2, activation="none")
    with torch.no_grad():
        ca.fc.weight.zero_()
        ca.fc.bias.copy_(torch.tensor([1.0, -2.0, math.log(4.0), 0.0]))  # mu (1, -2), sigma (2, 1)
    c, mu, logvar = ca(torch.randn(20000, 3))
    assert torch.allclose(c.mean(0), torch.tensor([1.0, -2.0]), atol=0.05)
    assert torch.allclose(c.std(0), torch.tensor([2.0, 1.0]), atol=0.05)
    assert torch.equal(ca(torch.randn(4, 3), sample=False)[0], mu[:4])


# --- the conditional heads ------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["joint", "separate"])
def test_both_condition_styles_give_one_score_per_image_that_depends_on_the_condition(style):
    torch.manual_seed(0)
    head = ConditionalHead(channels=6, condition_dim=3, condition_style=style)
    features, condition = torch.randn(5, 6, 4, 4), torch.randn(5, 3)
    scores = head(features, condition)
    assert scores.shape == (5,)
    assert not torch.allclose(scores, head(features, torch.randn(5, 3)))
    scores.sum().backward()
    assert all(p.grad is not None for p in head.parameters())
    if style == "separate":  # realism from the image alone plus a match score
        assert torch.allclose(scores, head.score(features).flatten() + head.match(features, condition), atol=1e-6)
        assert torch.allclose(head.match(features, torch.zeros(5, 3)), torch.zeros(5))


@pytest.mark.parametrize("style", ["joint", "separate"])
def test_text_discriminator_scores_each_image(style):
    d = TextDiscriminator(text_dim=16, code_dim=8, channels=1, image_size=32, ndf=4, condition_style=style)
    assert d(torch.randn(3, 1, 32, 32), torch.randn(3, 16)).shape == (3,)


def test_condition_style_must_be_named_right():
    with pytest.raises(ValueError, match="joint.*separate"):
        DCGANDiscriminator(channels=1, image_size=16, ndf=4, num_classes=10, condition_style="both")


def test_cgan_separate_style_keeps_the_image_input_and_scores_the_label_apart():
    joint = DCGANDiscriminator(channels=1, image_size=16, ndf=4, num_classes=10)
    separate = DCGANDiscriminator(channels=1, image_size=16, ndf=4, num_classes=10, condition_style="separate")
    assert joint.features[0].in_channels == 11 and separate.features[0].in_channels == 1
    assert separate(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])).shape == (4,)


def test_the_fully_connected_cgan_discriminator_takes_both_styles_too():
    joint = MLPDiscriminator(channels=1, image_size=8, hidden=(6, 5), pieces=2, num_classes=10)
    separate = MLPDiscriminator(channels=1, image_size=8, hidden=(6, 5), pieces=2, num_classes=10,
                                condition_style="separate").eval()
    assert joint.net[1].linear.in_features == 64 + 10 and separate.net[1].linear.in_features == 64
    x = torch.randn(4, 1, 8, 8)
    scores = separate(x, torch.tensor([0, 1, 2, 3]))
    assert scores.shape == (4,) and not torch.allclose(scores, separate(x, torch.tensor([3, 2, 1, 0])))


def test_cgan_with_the_separate_style_trains(make_cfg):
    cfg = make_cfg(*QUICK, *SMALL["cgan"], "model=cgan", "model.discriminator.condition_style=separate",
                   "logger=none", "callbacks=none")
    metrics = train(cfg)
    assert math.isfinite(metrics["train/d_loss"]) and math.isfinite(metrics["train/g_loss"])


# --- the generator ---------------------------------------------------------------------------------------
def test_generator_with_conditioning_augmentation_gives_its_kl():
    g = TextGenerator(text_dim=16, latent_dim=8, code_dim=4, channels=1, image_size=16, ngf=4,
                      conditioning_augmentation=True)
    code, kl = g.encode_text(torch.randn(3, 16))
    assert code.shape == (3, 4) and kl.ndim == 0 and float(kl.detach()) >= 0
    assert TextGenerator(16, 8, 4, 1, 16, 4).encode_text(torch.randn(3, 16))[1] is None
    assert g(torch.randn(3, 8), torch.randn(3, 16)).shape == (3, 1, 16, 16)


def test_captioned_rows_put_each_caption_beside_its_samples():
    images = torch.zeros(6, 1, 8, 8)
    figure = captioned_rows(images, ["a thick seven", "a thin one"])
    assert figure.shape[0] == 3 and figure.shape[1] == 2 * 12  # two rows of 8 px images with padding (RGB)
    text_width = figure.shape[2] - 3 * 10 - 2
    assert text_width > 20 and figure[:, :, :text_width].max() > 0.9  # white text on black
