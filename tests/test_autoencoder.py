"""Autoencoders (model=autoencoder): their networks, the sparse and denoising terms, a few training steps on
CPU (fully connected and convolutional), the logged grid, and gan-eval's linear probe on the codes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.losses.reconstruction import bernoulli_kl, bernoulli_nll, corrupt, sparsity_penalty
from gan_cli.models.classic.autoencoder import Autoencoder, linear_probe
from gan_cli.models.classic.coders import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from tests.conftest import QUICK, compose_train

pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks of either family
FC = ["model.encoder.hidden=[16]", "model.decoder.hidden=[16]", "model.code_dim=4"]
CONV = ["model/coder=conv", "model.encoder.ndf=4", "model.decoder.ngf=4", "model.code_dim=4"]


# --- networks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels, size", [(1, 32), (3, 64)])
def test_encoders_and_decoders_fit_the_image_and_the_code(channels, size):
    images = torch.rand(2, channels, size, size) * 2 - 1
    for encoder, decoder in [(MLPEncoder(6, channels, size, hidden=[8]), MLPDecoder(3, channels, size, hidden=[8])),
                             (ConvEncoder(6, channels, size, ndf=4), ConvDecoder(3, channels, size, ngf=4))]:
        assert encoder(images).shape == (2, 6)
        logits = decoder(torch.randn(2, 3))
        assert logits.shape == (2, channels, size, size)
    # the decoders give logits (no Tanh): a large code drives them past [-1, 1]
    decoder = MLPDecoder(3, channels, size, hidden=[8])
    assert decoder(100 * torch.randn(4, 3)).abs().max() > 1
    # the conv stacks are DCGAN's: stride-2 convolutions halve the image down to 4x4
    convs = [m for m in ConvEncoder(6, channels, size, ndf=4).features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == int(math.log2(size // 4)) and all(c.stride == (2, 2) for c in convs)


def test_the_conv_networks_name_the_image_sizes_they_take():
    with pytest.raises(UserError, match=r"data\.image_size=28.*model/coder=fc"):
        ConvEncoder(8, 1, 28)
    with pytest.raises(UserError, match="power of two"):
        ConvDecoder(8, 1, 48)


# --- the sparse and denoising terms ------------------------------------------------------------------
def test_the_sparsity_penalty_on_a_hand_case_and_zero_at_the_target():
    # two code units, mean activations 0.2 and 0.5 over a batch of two; rho = 0.1
    activations = torch.tensor([[0.1, 0.6], [0.3, 0.4]])
    by_hand = (0.1 * math.log(0.1 / 0.2) + 0.9 * math.log(0.9 / 0.8)) \
        + (0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5))
    assert float(sparsity_penalty(activations, 0.1)) == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(0.404754, abs=1e-6)
    rho_hat = torch.tensor([0.2, 0.5])
    Bernoulli = torch.distributions.Bernoulli
    expected = torch.distributions.kl_divergence(Bernoulli(0.1), Bernoulli(rho_hat))
    assert torch.allclose(bernoulli_kl(0.1, rho_hat), expected, atol=1e-6)
    # at rho_hat = rho the penalty is 0 and so is its gradient; away from it, it is positive
    at_target = torch.full((5, 3), 0.05, requires_grad=True)
    penalty = sparsity_penalty(at_target, 0.05)
    penalty.backward()
    assert float(penalty.detach()) == pytest.approx(0.0, abs=1e-7) and at_target.grad.abs().max() < 1e-5
    assert float(sparsity_penalty(torch.full((5, 3), 0.3), 0.05)) > 0


def test_masking_zeroes_about_the_level_of_pixels_and_keeps_the_rest():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 32, 32) * 0.9 + 0.1  # no zeros of their own
    masked = corrupt(images, "masking", 0.3)
    zeroed = masked == 0
    assert float(zeroed.float().mean()) == pytest.approx(0.3, abs=0.01)
    assert torch.equal(masked[~zeroed], images[~zeroed])
    assert corrupt(images, "none", 0.3) is images and corrupt(images, "masking", 0.0) is images


def test_gaussian_corruption_adds_noise_of_the_level_as_std():
    torch.manual_seed(0)
    images = torch.rand(64, 3, 16, 16)
    noise = corrupt(images, "gaussian", 0.4) - images
    assert float(noise.std()) == pytest.approx(0.4, rel=0.02) and abs(float(noise.mean())) < 0.01


def small_model(**settings) -> Autoencoder:
    return Autoencoder(lambda out_features: MLPEncoder(out_features, 1, 8, hidden=[16]),
                       lambda code_dim: MLPDecoder(code_dim, 1, 8, hidden=[16]), torch.optim.Adam, code_dim=4,
                       **settings)


@torch.no_grad()
def test_the_denoising_loss_reconstructs_the_clean_image_from_the_corrupted_one():
    model = small_model(corruption="masking", corruption_level=0.5)
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    torch.manual_seed(3)
    loss = model.objective(images, training=True)["reconstruction"]
    torch.manual_seed(3)  # the same corruption, by hand
    corrupted = model.corrupt(images)
    assert float((model.to_unit(corrupted) == 0).float().mean()) >= 0.3  # it was corrupted
    logits = model.decoder(model.encode(corrupted))
    assert float(loss) == pytest.approx(float(bernoulli_nll(logits, model.to_unit(images)).mean()), rel=1e-6)
    assert float(loss) != pytest.approx(float(bernoulli_nll(logits, model.to_unit(corrupted)).mean()), rel=1e-3)
    # held out (validation), the encoder sees the clean image
    clean = bernoulli_nll(model.decoder(model.encode(images)), model.to_unit(images)).mean()
    assert float(model.objective(images, training=False)["reconstruction"]) == pytest.approx(float(clean), rel=1e-6)


@torch.no_grad()
def test_the_sparse_loss_adds_beta_times_the_penalty_on_the_logistic_code():
    model = small_model(code_activation="sigmoid", sparsity_weight=0.5, sparsity_target=0.1)
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    terms = model.objective(images, training=True)
    code = model.encode(images)
    assert code.min() > 0 and code.max() < 1
    assert float(terms["sparsity"]) == pytest.approx(float(sparsity_penalty(code, 0.1)), rel=1e-6)
    assert float(terms["loss"]) == pytest.approx(float(terms["reconstruction"] + 0.5 * terms["sparsity"]), rel=1e-6)
    assert "sparsity" not in small_model().objective(images, training=True)  # beta = 0: off


# --- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, named", [
    ("model.corruption=blur", r"model\.corruption='blur'"),
    ("model.sparsity_target=0", r"model\.sparsity_target=0"),
    ("model.sparsity_target=1.5", r"model\.sparsity_target=1\.5"),
    ("model.sparsity_weight=-1", r"model\.sparsity_weight=-1"),
    ("model.sparsity_weight=0.1", r"model\.code_activation=sigmoid"),
    ("model.corruption=masking model.corruption_level=1", r"model\.corruption_level=1"),
    ("model.corruption=gaussian model.corruption_level=-0.1", r"model\.corruption_level=-0\.1"),
    ("model.reconstruction=l1", r"model\.reconstruction='l1'"),
    ("model.code_activation=relu", r"model\.code_activation='relu'"),
])
def test_bad_settings_are_named(make_cfg, override, named):
    with pytest.raises(InstantiationException, match=named) as error:
        build(make_cfg("model=autoencoder", *QUICK, *override.split()))
    assert isinstance(error.value.__cause__, UserError)


def test_an_adversarial_loss_is_refused(make_cfg):
    with pytest.raises(UserError, match="no adversarial loss"):
        build(make_cfg("model=autoencoder", *QUICK, "loss=hinge"))


# --- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("coder", [FC, CONV], ids=["fc", "conv"])
def test_a_few_steps_log_the_terms_and_the_grid_of_held_out_images(make_cfg, coder):
    cfg = make_cfg("model=autoencoder", *QUICK, *coder, "model.corruption=gaussian", "model.code_activation=sigmoid",
                   "model.sparsity_weight=0.1", "logger=none", "model.num_examples=5")
    datamodule, model, trainer = build(cfg)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("train/loss", "train/reconstruction", "train/sparsity", "train/mean_activation", "val/reconstruction",
                 "val/loss"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    images, per_row = model.visuals()["reconstructions"]
    assert per_row == 5 and images.shape == (15, 1, 32, 32)  # input, corrupted, reconstruction
    assert torch.equal(images[:5], model.examples) and not torch.equal(images[5:10], images[:5])
    assert model.visuals()["reconstructions"][0].equal(images)  # the same corruption in every grid
    assert (Path(trainer.default_root_dir) / "samples" / "reconstructions_latest.png").is_file()


# --- the linear probe --------------------------------------------------------------------------------
def test_the_probe_separates_linearly_separable_codes_and_not_random_labels():
    generator = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(3, 5, generator=generator)
    labels = torch.arange(300) % 3
    codes = centres[labels] + 0.3 * torch.randn(300, 5, generator=generator)
    assert linear_probe(codes[:200], labels[:200], codes[200:], labels[200:]) == 1.0
    noise = torch.randn(300, 5, generator=generator)  # labels unrelated to the codes: about chance (1/3)
    assert linear_probe(noise[:200], labels[:200], noise[200:], labels[200:]) < 0.5
    # deterministic: the same features give the same accuracy
    assert linear_probe(noise[:200], labels[:200], noise[200:], labels[200:]) == \
        linear_probe(noise[:200], labels[:200], noise[200:], labels[200:])


def test_gan_eval_reports_the_probe_after_a_short_run_on_digits(tmp_path):
    run = tmp_path / "run"
    train(compose_train(run, ["model=autoencoder", "data=mnist_5k", "trainer=cpu", "trainer.max_epochs=1",
                              "trainer.limit_train_batches=40", "trainer.limit_val_batches=2", "logger=none",
                              "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]))
    ckpt = run / "checkpoints" / "last.ckpt"
    record, _ = evaluate(compose_train(tmp_path, [f"ckpt_path={ckpt}"], config_name="eval"))
    scores = record["scores"]
    assert record["protocol"]["model_kind"] == "own"
    for name in ("probe_accuracy", "probe_accuracy_pixels"):
        assert 0.5 < scores[name]["mean"] <= 1.0, scores  # chance is 0.1
    # gan-sample says why it cannot draw, and what to do instead
    with pytest.raises(UserError, match=r"holds Autoencoder: an autoencoder has no prior.*model=vae"):
        sample(OmegaConf.create({"ckpt_path": str(ckpt), "seed": 0, "device": "cpu", "num_samples": 4,
                                 "output": str(tmp_path / "x.png"), "label": None, "nrow": None}))
