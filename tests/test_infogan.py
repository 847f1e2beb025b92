"""InfoGAN: its mutual-information bound, its networks, a few training steps on CPU, its grids, and the
matching of c1's values to classes that gan-eval reports."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from gan_cli.commands.train import build
from gan_cli.errors import UserError
from gan_cli.losses.information import (
    categorical_codes_information,
    categorical_information,
    continuous_information,
    gaussian_nll,
    uniform_entropy,
)
from gan_cli.models.gans.infogan import InfoGAN
from gan_cli.models.gans.infogan_nets import InfoGANDiscriminator, InfoGANGenerator
from gan_cli.models.gans.infogan_scores import best_matching
from tests.conftest import QUICK

pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks: a training step takes milliseconds
SMALL = ["model.generator.fc=16", "model.generator.ngf=4", "model.discriminator.fc=16", "model.discriminator.ndf=4",
         "model.discriminator.q_hidden=8", "model.noise_dim=8"]


def small_model(**settings) -> InfoGAN:
    codes = {"categorical_codes": settings.pop("categorical_codes", [10]),
             "continuous_codes": settings.pop("continuous_codes", 2)}
    generator = InfoGANGenerator(noise_dim=8, **codes, image_size=16, fc=16, ngf=4)
    discriminator = InfoGANDiscriminator(**codes, image_size=16, fc=16, ndf=4, q_hidden=8)
    from gan_cli.losses import NonSaturatingLoss

    return InfoGAN(generator, discriminator, NonSaturatingLoss(), torch.optim.Adam, noise_dim=8, **codes, **settings)


# --- the mutual-information lower bound ------------------------------------------------------------
def test_categorical_bound_is_log_k_for_a_perfect_q_and_zero_for_a_uniform_q():
    codes = torch.arange(10).repeat(3)
    perfect = 100.0 * torch.nn.functional.one_hot(codes, 10).float()
    assert float(categorical_information(perfect, codes)) == pytest.approx(math.log(10), abs=1e-6)
    assert float(categorical_information(torch.zeros(30, 10), codes)) == pytest.approx(0.0, abs=1e-6)
    # a Q that puts probability 1/2 on the right value: log 10 - log 2
    half = torch.full((30, 10), math.log(0.5 / 9))
    half[torch.arange(30), codes] = math.log(0.5)
    assert float(categorical_information(half, codes)) == pytest.approx(math.log(5), abs=1e-5)
    # two codes side by side: the bounds add up
    both = torch.cat([perfect, torch.zeros(30, 4)], 1)
    two = torch.stack([codes, codes % 4], 1)
    assert float(categorical_codes_information(both, two, [10, 4])) == pytest.approx(math.log(10), abs=1e-6)


def test_continuous_bound_is_the_uniform_entropy_minus_the_gaussian_nll():
    codes = torch.rand(50, 2) * 2 - 1
    assert uniform_entropy(2) == pytest.approx(2 * math.log(2))
    # std fixed at 1: a perfect mean still pays log(2 pi) / 2 per dimension
    per_dim = math.log(2) - 0.5 * math.log(2 * math.pi)
    assert float(continuous_information(codes, codes)) == pytest.approx(2 * per_dim, abs=1e-6)
    # a Q that ignores x (mean 0, std 1) knows less than a perfect one
    assert float(continuous_information(torch.zeros(50, 2), codes)) < float(continuous_information(codes, codes))
    # the NLL is that of torch's Normal, with a learned std too
    mean, log_std = torch.randn(50, 2), torch.randn(50, 2) * 0.3
    expected = -torch.distributions.Normal(mean, log_std.exp()).log_prob(codes).sum(1).mean()
    assert float(gaussian_nll(mean, codes, log_std)) == pytest.approx(float(expected), rel=1e-5)
    expected = -torch.distributions.Normal(mean, 1.0).log_prob(codes).sum(1).mean()
    assert float(gaussian_nll(mean, codes)) == pytest.approx(float(expected), rel=1e-5)


# --- networks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3)])
def test_networks_fit_any_size_divisible_by_4(size, channels):
    g = InfoGANGenerator(noise_dim=8, categorical_codes=[10], continuous_codes=2, channels=channels, image_size=size,
                         fc=16, ngf=4)
    d = InfoGANDiscriminator(categorical_codes=[10], continuous_codes=2, learn_std=True, channels=channels,
                             image_size=size, fc=16, ndf=4, q_hidden=8)
    images = g(torch.rand(3, g.latent_dim))
    assert g.latent_dim == 20 and images.shape == (3, channels, size, size) and images.abs().max() <= 1
    scores, q = d.both(images)
    assert d(images).shape == scores.shape == (3,) and q.shape == d.q(images).shape == (3, 14)
    assert isinstance(d.score_layer, torch.nn.Linear) and d.score_layer.out_features == 1
    with pytest.raises(ValueError, match="divisible by 4"):
        InfoGANGenerator(image_size=30)


def test_the_model_refuses_networks_built_for_other_codes():
    from gan_cli.losses import NonSaturatingLoss

    g = InfoGANGenerator(noise_dim=8, categorical_codes=[5], image_size=16, fc=16, ngf=4)
    d = InfoGANDiscriminator(categorical_codes=[10], image_size=16, fc=16, ndf=4, q_hidden=8)
    with pytest.raises(UserError, match="do not fit its codes"):
        InfoGAN(g, d, NonSaturatingLoss(), torch.optim.Adam, noise_dim=8)


# --- training ----------------------------------------------------------------------------------------
def test_infogan_trains_a_few_steps_with_finite_losses(make_cfg):
    cfg = make_cfg(*QUICK, *SMALL, "model=infogan", "data.dataset.size=32", "loss.d_steps=2",
                   "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    assert (module.g_lr, module.d_lr) == (1e-3, 2e-4)
    before_q = module.discriminator.q_head[0].weight.detach().clone()
    before_g = module.generator.fc[0].weight.detach().clone()
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/info_loss", "train/info_categorical", "train/info_continuous",
                 "train/grad_norm_D", "train/grad_norm_G", "train/lr_G", "train/lr_D"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert float(metrics["train/info_categorical"]) <= math.log(10) + 1e-6
    # 2 batches, k=2: 2 D updates (which train Q too) and 1 G update
    assert module.d_updates == 2 and trainer.global_step == 3
    assert not torch.equal(before_q, module.discriminator.q_head[0].weight)
    assert not torch.equal(before_g, module.generator.fc[0].weight)
    assert module.sample(5).shape == (5, 1, 32, 32)
    # the hyperparameters are plain containers: checkpoints load with weights_only=True
    assert type(module.hparams["categorical_codes"]) is list


def test_q_comes_from_ds_own_pass_over_the_fakes_with_the_same_gradients():
    torch.manual_seed(0)
    model = small_model()
    real, fake = torch.rand(6, 1, 16, 16) * 2 - 1, torch.rand(6, 1, 16, 16) * 2 - 1
    passes = []
    model.discriminator.body.register_forward_hook(lambda *_: passes.append(1))
    critic = model.critic(fake)
    scores = critic(fake)
    assert len(passes) == 1 and critic.kept is not None
    codes = model.codes_of(critic, fake)
    assert len(passes) == 1  # no second pass through the body
    # the same values and gradients as two passes (batch norm in training mode)
    model.discriminator.zero_grad()
    (scores.sum() + codes.square().sum()).backward()
    shared = [p.grad.clone() for p in model.discriminator.parameters()]
    model.discriminator.zero_grad()
    apart_scores, apart_codes = model.discriminator(fake), model.discriminator.q(fake)
    (apart_scores.sum() + apart_codes.square().sum()).backward()
    torch.testing.assert_close(codes, apart_codes)
    for a, b in zip(shared, (p.grad for p in model.discriminator.parameters())):
        torch.testing.assert_close(a, b)
    # other images (real ones, augmented fakes) are scored without keeping Q's outputs
    critic = model.critic(fake)
    critic(real), critic(fake.clone())
    assert critic.kept is None
    torch.testing.assert_close(model.codes_of(critic, fake), model.discriminator.q(fake))


def test_visuals_vary_one_code_at_a_time():
    model = small_model()
    visuals = model.visuals()
    assert set(visuals) == {"samples", "c1", "c2", "c3"}
    assert visuals["samples"][0].shape == (64, 1, 16, 16)
    for name in ("c1", "c2", "c3"):
        images, per_row = visuals[name]
        assert images.shape == (100, 1, 16, 16) and per_row == 10
    # c1 grid: same noise down a column, so the rows differ only by c1
    c1 = visuals["c1"][0].view(10, 10, -1)
    assert not torch.allclose(c1[0], c1[1])
    # a continuous code that G ignores would give identical columns; here they differ along the sweep
    c2 = visuals["c2"][0].view(10, 10, -1)
    assert not torch.allclose(c2[:, 0], c2[:, -1])


# --- matching c1 to classes --------------------------------------------------------------------------
def test_best_matching_of_a_permutation_is_perfect():
    permutation = torch.tensor([3, 7, 0, 1, 9, 2, 8, 5, 4, 6])
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts[torch.arange(10), permutation] = 20
    accuracy, matching = best_matching(counts)
    assert accuracy == 1.0 and matching == {v: int(k) for v, k in enumerate(permutation)}


def test_best_matching_with_a_known_confusion():
    # values 0..2 mean classes 2, 0, 1 with 8 of 10 right; value 3 is split 6/4 between classes 3 and 0
    counts = torch.tensor([[1, 1, 8, 0],
                           [8, 2, 0, 0],
                           [0, 8, 2, 0],
                           [4, 0, 0, 6]])
    accuracy, matching = best_matching(counts)
    assert matching == {0: 2, 1: 0, 2: 1, 3: 3}
    assert accuracy == pytest.approx(30 / 40)
    # a one-to-one matching: two values may not both claim class 0 even if each mostly shows it
    accuracy, matching = best_matching(torch.tensor([[9, 1], [8, 2]]))
    assert matching == {0: 0, 1: 1} and accuracy == pytest.approx(11 / 20)


def test_evaluation_scores_match_c1_to_the_classifier_labels(monkeypatch):
    model = small_model()
    permutation = torch.tensor([4, 0, 9, 1, 3, 2, 8, 7, 6, 5])
    drawn = []

    def sample(n, labels=None):  # an image of grey level class/10 for c1 = value, as a perfect G would draw
        drawn.append(labels.clone())
        return (permutation[labels].float() / 10).view(-1, 1, 1, 1).expand(n, 1, 4, 4) * 2 - 1

    def classifier(images):  # reads the grey level back
        level = (images.mean(dim=(1, 2, 3)) * 10).round().long()
        return None, torch.nn.functional.one_hot(level, 10).float()

    monkeypatch.setattr(model, "sample", sample)
    evaluator = SimpleNamespace(classifier=classifier, samples_per_label=7, batch_size=4)
    datamodule = SimpleNamespace(denormalize=lambda x: (x + 1) / 2, spec=SimpleNamespace(num_classes=0))
    scores = model.evaluation_scores(evaluator, datamodule)
    assert scores["c1_accuracy"] == 1.0
    assert {v: scores[f"c1_to_class_{v}"] for v in range(10)} == {v: float(k) for v, k in enumerate(permutation)}
    assert all(isinstance(value, float) for value in scores.values())
    assert sum(len(labels) for labels in drawn) == 70
    assert model.evaluation_scores(SimpleNamespace(classifier=None), datamodule) == {}  # no classifier, no labels


def test_q_c1_accuracy_classifies_real_images_by_qs_most_likely_c1():
    model = small_model()
    permutation = torch.tensor([4, 0, 9, 1, 3, 2, 8, 7, 6, 5])  # c1 value v means class permutation[v]
    value_of_class = torch.argsort(permutation)
    labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3, -1]
    answers = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 7, 0]  # the class Q's code names: wrong for the 12th image
    # image i holds its index; Q's logits put the most weight on the value meaning answers[i]
    items = [{"image": torch.full((1, 16, 16), float(i)), "label": torch.tensor(y)} for i, y in enumerate(labels)]

    def q(images):
        logits = torch.zeros(len(images), model.discriminator.q_dim)
        picked = value_of_class[torch.tensor(answers)[images[:, 0, 0, 0].long()]]
        logits[torch.arange(len(images)), picked] = 5.0
        return logits

    modes = []
    model.discriminator.q = lambda images: modes.append(model.discriminator.training) or q(images)
    model.discriminator.train()
    asked = []
    datamodule = SimpleNamespace(build=lambda split: asked.append(split) or items, num_workers=0,
                                 spec=SimpleNamespace(num_classes=10))
    evaluator = SimpleNamespace(classifier=None, reference_split="test", batch_size=5)
    scores = model.evaluation_scores(evaluator, datamodule)
    assert asked == ["test"] and scores == {"q_c1_accuracy": pytest.approx(11 / 12)}  # the -1 is skipped
    assert modes == [False, False, False] and model.discriminator.training  # Q in eval mode, then restored
    # unlabelled data: no score
    datamodule.spec.num_classes = 0
    assert model.evaluation_scores(evaluator, datamodule) == {}


def test_sample_takes_c1_values_as_labels():
    model = small_model()
    _, categorical, continuous = model.sample_latent(6, torch.tensor([0, 1, 2, 3, 4, 5]))
    assert categorical[:, 0].tolist() == [0, 1, 2, 3, 4, 5] and continuous.abs().max() <= 1
    assert model.sample(6, torch.arange(6)).shape == (6, 1, 16, 16)
