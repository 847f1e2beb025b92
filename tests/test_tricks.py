"""Each trick's distinctive part, through the hooks a model calls (gan_cli.tricks)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_cli.commands.train import build
from gan_cli.errors import UserError
from gan_cli.losses import LeastSquaresLoss, NonSaturatingLoss
from gan_cli.losses.penalties import r1_penalty
from gan_cli.models.gans.gan import GAN
from gan_cli.nets import DCGANDiscriminator, DCGANGenerator, MLPGenerator
from gan_cli.nets.trick_layers import VirtualBatchNorm
from gan_cli.tricks import (
    EMA,
    R1,
    DiffAugmentTrick,
    FeatureMatching,
    HistoricalAveraging,
    LabelSmoothing,
    MinibatchDiscriminationTrick,
    SpectralNorm,
    Unrolled,
    VirtualBatchNormTrick,
    attach_tricks,
)

torch.manual_seed(0)


class LinearCritic(nn.Module):
    """D(x) = w . x: its input gradient is w everywhere."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.score = nn.Linear(features, 1, bias=False)

    def forward(self, x, labels=None):
        return self.score(x.flatten(1)).squeeze(1)


def dcgan(loss=None, **tricks) -> GAN:
    model = GAN(DCGANGenerator(latent_dim=8, channels=1, image_size=16, ngf=4),
                DCGANDiscriminator(channels=1, image_size=16, ndf=4), loss or NonSaturatingLoss(),
                partial(torch.optim.Adam, betas=(0.5, 0.999)), num_samples=4)
    attach_tricks(model, tricks)
    return model


def mlp(discriminator: nn.Module, **tricks) -> GAN:
    model = GAN(MLPGenerator(latent_dim=4, channels=1, image_size=4, hidden=[8]), discriminator, NonSaturatingLoss(),
                partial(torch.optim.Adam), num_samples=4)
    attach_tricks(model, tricks)
    return model


def node(target: type, **settings) -> dict:
    return {"_target_": f"{target.__module__}.{target.__qualname__}", **settings}


def test_feature_matching_replaces_g_loss_by_the_distance_of_mean_features():
    model = dcgan(feature_matching=node(FeatureMatching))
    real, fake = torch.randn(8, 1, 16, 16), torch.randn(8, 1, 16, 16, requires_grad=True)
    loss = model.generator_adversarial_loss(model.critic(None), fake, real)
    features = model.discriminator.features  # the input of D's last layer
    expected = ((features(real).flatten(1).mean(0) - features(fake).flatten(1).mean(0)) ** 2).sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_minibatch_discrimination_keeps_one_score_per_image_and_looks_at_the_batch():
    model = dcgan(minibatch_discrimination=node(MinibatchDiscriminationTrick, num_kernels=6, kernel_dim=3))
    images = torch.randn(5, 1, 16, 16)
    model.discriminator.eval()
    scores = model.discriminator(images)
    assert scores.shape == (5,)
    alone = model.discriminator(images[:1])
    assert not torch.allclose(scores[0], alone[0])  # the rest of the batch changed its score
    head = model.discriminator.head
    assert head.minibatch.T.shape == (4 * 4 * 4 * 2, 6, 3)  # D's 4x4 features of 8 channels, B=6, C=3


def test_historical_averaging_penalises_distance_to_the_mean_of_past_weights():
    model = mlp(LinearCritic(16), historical_averaging=node(HistoricalAveraging, weight=0.5))
    history = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p))
        history.append([p.detach().clone() for p in model.discriminator.parameters()])
        model.discriminator_updated(model.discriminator)
    with torch.no_grad():
        model.discriminator.score.weight.add_(1.0)
    terms, _, _ = model.discriminator_terms(model.critic(None), torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4))
    mean = torch.stack([h[0] for h in history]).mean(0)
    expected = 0.5 * ((model.discriminator.score.weight - mean) ** 2).sum()
    torch.testing.assert_close(terms["historical_average"], expected)
    assert model.tricks["historical_averaging"].discriminator_averages[0].count == 3


def test_label_smoothing_sets_real_targets_to_0_9_and_needs_the_cross_entropy_loss():
    model = mlp(LinearCritic(16), label_smoothing=node(LabelSmoothing, real_label=0.9))
    real = torch.randn(6, 1, 4, 4)
    terms, real_scores, _ = model.discriminator_terms(model.critic(None), real, torch.randn(6, 1, 4, 4))
    torch.testing.assert_close(terms["real"], F.binary_cross_entropy_with_logits(real_scores, torch.full((6,), 0.9)))
    with pytest.raises(UserError, match=r"tricks=\[label_smoothing\].*LeastSquaresLoss.*loss=nonsaturating"):
        dcgan(LeastSquaresLoss(), label_smoothing=node(LabelSmoothing))


def test_spectral_norm_brings_each_discriminator_layer_near_norm_1():
    model = dcgan(spectral_norm=node(SpectralNorm))
    for _ in range(30):  # power iterations run in train-mode forward passes
        model.discriminator(torch.randn(4, 1, 16, 16))
    layers = [m for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05
    assert not any(isinstance(m, nn.Conv2d) and hasattr(m, "parametrizations") for m in model.generator.modules())


def test_r1_adds_half_gamma_times_the_squared_input_gradient():
    critic = LinearCritic(16)
    model = mlp(critic, r1=node(R1, gamma=4.0))
    terms, _, _ = model.discriminator_terms(model.critic(None), torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4))
    w = critic.score.weight.detach()
    torch.testing.assert_close(terms["r1"], 0.5 * 4.0 * (w ** 2).sum())  # grad_x (w . x) = w for every x
    torch.testing.assert_close(terms["r1"], 2.0 * r1_penalty(model.critic(None), torch.randn(3, 1, 4, 4)))


def test_ema_weights_after_n_updates_and_sampling_uses_them():
    model = dcgan(ema=node(EMA, decay=0.5))
    weight = model.generator.net[0].weight
    seen = []
    for step in range(3):
        with torch.no_grad():
            weight.fill_(float(step + 1))
        seen.append(float(step + 1))
        model.generator_updated()
    # AveragedModel: the first update copies, then avg <- 0.5 * avg + 0.5 * w: 1, 1.5, 2.25
    average = model.inference_generator(model.generator)
    assert average is not model.generator
    torch.testing.assert_close(average.net[0].weight, torch.full_like(weight, 2.25))
    z = torch.randn(4, 8)
    torch.testing.assert_close(model.generate(z), average.eval()(z))
    assert not any(p.requires_grad for p in average.parameters())


class Recorder(nn.Module):
    """A critic that remembers what it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.score = nn.Linear(1, 1)

    def forward(self, x, labels=None):
        self.seen.append(x.detach().clone())
        return self.score(x.mean(dim=(1, 2, 3))[:, None]).squeeze(1)


def test_diffaugment_augments_real_and_fake_alike_for_both_players():
    critic = Recorder()
    model = mlp(critic, diffaugment=node(DiffAugmentTrick, policy="translation,cutout"))
    real, fake = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    model.discriminator_terms(model.critic(None), real, fake)
    model.generator_adversarial_loss(model.critic(None), fake.clone().requires_grad_(), real)
    shown_real, shown_fake, shown_fake_g = critic.seen
    for raw, shown in ((real, shown_real), (fake, shown_fake), (fake, shown_fake_g)):
        assert shown.shape == raw.shape and not torch.equal(shown, raw)
        assert (shown == 0).any()  # cutout's hole


def unrolled_setup(second_order: bool, optimizer=torch.optim.Adam, **settings):
    torch.manual_seed(0)
    model = dcgan(unrolled=node(Unrolled, steps=3, second_order=second_order))
    opt_d = optimizer(model.discriminator.parameters(), lr=1e-2, **settings)
    model.discriminator_optimizer = lambda: opt_d
    real = torch.randn(8, 1, 16, 16)
    terms, _, _ = model.discriminator_terms(model.critic(None), real, model.sample(8))
    sum(terms.values()).backward()
    opt_d.step()  # D has optimizer state, as in training
    opt_d.zero_grad(set_to_none=True)
    return model, opt_d, real


def generator_gradient(model, real) -> list[torch.Tensor]:
    model.generator.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    fake = model.generator(torch.randn(8, 8))
    model.generator_adversarial_loss(model.critic(None), fake, real).backward()
    return [p.grad.clone() for p in model.generator.parameters()]


@pytest.mark.parametrize("second_order", [True, False])
def test_unrolled_steps_leave_the_discriminator_and_its_optimizer_as_they_were(second_order):
    model, opt_d, real = unrolled_setup(second_order, betas=(0.5, 0.999))
    weights = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in opt_d.state.values()]
    unrolled = generator_gradient(model, real)
    for key, value in model.discriminator.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, opt_d.state.values()))
    assert all(p.grad is None for p in model.discriminator.parameters())
    model.tricks["unrolled"].steps = 0  # against the current D, G's gradient differs: it looked ahead
    assert any(not torch.allclose(a, b) for a, b in zip(unrolled, generator_gradient(model, real)))


@pytest.mark.parametrize("optimizer, settings", [(torch.optim.Adam, {"betas": (0.5, 0.999)}),
                                                 (torch.optim.SGD, {"momentum": 0.5})])
def test_second_order_unrolling_reaches_the_same_d_and_adds_d_s_reaction_to_g_s_gradient(optimizer, settings):
    """The differentiable D updates land where D's optimizer would (checked against the first-order copy, which
    runs the optimizer itself); only the gradient differs, by the term through the unrolled updates."""
    first, _, real = unrolled_setup(False, optimizer, **settings)
    second, _, _ = unrolled_setup(True, optimizer, **settings)
    torch.manual_seed(1)
    fake = first.generator(torch.randn(8, 8)).detach()
    critics = [m.tricks["unrolled"].generator_critic(m, m.critic(None), real, fake) for m in (first, second)]
    torch.testing.assert_close(critics[1](real), critics[0](real), atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(a, b) for a, b in zip(generator_gradient(first, real),
                                                        generator_gradient(second, real)))


def test_virtual_batchnorm_makes_each_sample_independent_of_its_batch_and_keeps_its_reference():
    model = dcgan(virtual_batchnorm=node(VirtualBatchNormTrick))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.generator.modules())
    assert any(isinstance(m, VirtualBatchNorm) for m in model.generator.modules())
    z = torch.randn(6, 8)
    model.generator(z)  # the first batch becomes the reference
    together = model.generator(z[1:])
    alone = model.generator(z[1:2])
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=1e-4)
    restored = dcgan(virtual_batchnorm=node(VirtualBatchNormTrick))
    restored.load_state_dict(model.state_dict())
    torch.testing.assert_close(restored.generator(z[:3]), model.generator(z[:3]))
    with pytest.raises(UserError, match=r"tricks=\[virtual_batchnorm\].*has none"):
        mlp(LinearCritic(16), virtual_batchnorm=node(VirtualBatchNormTrick))


def test_tricks_compose_from_the_config_group_and_are_refused_by_non_adversarial_models(make_cfg):
    cfg = make_cfg("data=fake", "tricks=[ema,r1]", "tricks.ema.decay=0.9", "model.generator.ngf=4",
                   "model.discriminator.ndf=4", "trainer=cpu", "logger=none")
    assert list(cfg.tricks) == ["ema", "r1"] and cfg.tricks.ema.decay == 0.9
    _, model, _ = build(cfg)
    assert list(model.tricks) == ["ema", "r1"] and model.tricks["ema"].decay == 0.9
    cfg = make_cfg("data=fake", "model=classifier", "tricks=[ema]", "trainer=cpu", "logger=none")
    with pytest.raises(UserError, match=r"model=classifier is not adversarial, and tricks=\[ema\]"):
        build(cfg)


def test_ema_generator_is_what_gan_translate_and_gan_sample_use(make_cfg, image_pairs, one_thread):
    from gan_cli.assembly import load_model
    from gan_cli.checkpoint import read_checkpoint
    from gan_cli.commands.translate import load_generator
    from tests.conftest import translation_quick

    cfg = make_cfg(*translation_quick("cyclegan", image_pairs), "tricks=[ema]", "tricks.ema.decay=0.5", "logger=none")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    ckpt = f"{cfg.paths.output_dir}/checkpoints/last.ckpt"
    generator, name = load_generator(read_checkpoint(ckpt), "AtoB")
    loaded, _ = load_model(ckpt)
    average = loaded.tricks["ema"].averages["G_A"].module
    assert name == "G_A" and generator is not loaded.G_A
    for mine, theirs in zip(generator.parameters(), average.parameters()):
        torch.testing.assert_close(mine, theirs)
    assert any(not torch.equal(a, b) for a, b in zip(average.parameters(), loaded.G_A.parameters()))
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.translate(images), average.eval()(images))
