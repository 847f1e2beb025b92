"""The VAE (model=vae): the reparameterisation's gradient path, the closed-form KL term, the likelihoods, a few
training steps on CPU (fully connected and convolutional, grey and colour), its grids, gan-sample and gan-eval,
an exact resume, and the world-flags experiments (experiment=flags_vae / flags_dcgan) on a tiny folder."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli.assembly import load_model
from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.losses.reconstruction import bernoulli_nll, gaussian_nll, kl_to_standard_normal, reparameterize
from gan_cli.models.classic.coders import MLPDecoder, MLPEncoder
from gan_cli.models.classic.vae import VAE
from tests.conftest import POOLED, QUICK, compose_train
from tests.helpers import refusal, resumed_and_uninterrupted, same_state

pytestmark = pytest.mark.usefixtures("one_thread")

FC = ["model=vae", "model.encoder.hidden=[16]", "model.decoder.hidden=[16]", "model.code_dim=4"]
CONV = ["model=vae", "model/coder=conv", "model.encoder.ndf=4", "model.decoder.ngf=4", "model.code_dim=4"]
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none"]


# --- the latent terms ----------------------------------------------------------------------------------
def test_the_reparameterisation_passes_gradients_to_mu_and_log_variance_but_not_to_eps():
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0), -1.0]], requires_grad=True)
    torch.manual_seed(7)
    z = reparameterize(mu, logvar)
    torch.manual_seed(7)
    eps = torch.randn(1, 3)  # the draw reparameterize made
    sigma = torch.exp(0.5 * logvar.detach())
    assert torch.allclose(z.detach(), mu.detach() + sigma * eps)
    # z_j depends on mu_j and logvar_j only: the gradient of sum(z) is the diagonal of the Jacobian
    d_mu, d_logvar = torch.autograd.grad(z.sum(), [mu, logvar])
    assert torch.equal(d_mu, torch.ones(1, 3))
    assert torch.allclose(d_logvar, 0.5 * sigma * eps)
    # eps is a constant of the graph: with mu and logvar fixed nothing in z asks for a gradient
    assert not reparameterize(mu.detach(), logvar.detach()).requires_grad


def test_the_kl_term_matches_its_closed_form_by_hand_and_torch_distributions():
    # mu = [1, 0], log sigma^2 = [0, log 4]: 1/2 (1 + 1 - 1 - 0) + 1/2 (0 + 4 - 1 - log 4) = 2 - log 2
    kl = kl_to_standard_normal(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]]))
    assert kl.shape == (1,) and float(kl) == pytest.approx(2 - math.log(2), abs=1e-6)
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_to_standard_normal(mu, logvar), expected, atol=1e-5)
    assert float(kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0  # q = prior


def test_the_likelihoods_are_those_of_torch_distributions():
    torch.manual_seed(0)
    logits, mean, target = torch.randn(4, 1, 5, 5), torch.rand(4, 3, 5, 5), torch.rand(4, 3, 5, 5)
    binary = (torch.rand(4, 1, 5, 5) > 0.5).float()
    expected = -torch.distributions.Bernoulli(logits=logits).log_prob(binary).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(logits, binary), expected, atol=1e-4)
    log_std = torch.tensor(math.log(0.1))
    expected = -torch.distributions.Normal(mean, 0.1).log_prob(target).flatten(1).sum(1)
    assert torch.allclose(gaussian_nll(mean, target, log_std), expected, rtol=1e-5)


def small_vae(channels: int = 1, size: int = 8, **settings) -> VAE:
    return VAE(lambda out_features: MLPEncoder(out_features, channels, size, hidden=[16]),
               lambda code_dim: MLPDecoder(code_dim, channels, size, hidden=[16]), torch.optim.Adam, code_dim=3,
               **settings)


@torch.no_grad()
def test_the_loss_is_the_negative_elbo_and_kl_weight_weighs_the_minimised_objective():
    model = small_vae(kl_weight=0.5)
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    torch.manual_seed(1)
    terms = model.objective(images, training=True)
    torch.manual_seed(1)  # by hand: the same eps
    mu, logvar = model.encoder(images).chunk(2, dim=1)
    logits = model.decoder(mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
    reconstruction = bernoulli_nll(logits, (images + 1) / 2).mean()  # [-1, 1] data -> Bernoulli targets in [0, 1]
    kl = kl_to_standard_normal(mu, logvar).mean()
    assert float(terms["reconstruction"]) == pytest.approx(float(reconstruction), rel=1e-6)
    assert float(terms["kl"]) == pytest.approx(float(kl), rel=1e-6)
    assert float(terms["loss"]) == pytest.approx(float(reconstruction + kl), rel=1e-6)
    assert float(terms["objective"]) == pytest.approx(float(reconstruction + 0.5 * kl), rel=1e-6)
    assert "objective" not in small_vae().objective(images, training=True)  # kl_weight 1: the ELBO itself


def test_samples_come_from_the_prior_in_the_data_range():
    model = small_vae()
    model.train()
    images = model.sample(5)
    assert images.shape == (5, 1, 8, 8) and images.min() >= -1 and images.max() <= 1 and model.training
    torch.manual_seed(0)
    first = model.sample(3)
    torch.manual_seed(0)
    z = torch.randn(3, 3)
    assert torch.allclose(first, torch.tanh(model.decoder(z) / 2), atol=1e-6)  # sigmoid mapped to [-1, 1]
    with pytest.raises(UserError, match="no label"):
        model.sample(2, torch.zeros(2, dtype=torch.long))


# --- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, named", [
    ("model.likelihood=poisson", r"model\.likelihood='poisson'"),
    ("model.gaussian_std=0", r"model\.gaussian_std=0"),
    ("model.kl_weight=-1", r"model\.kl_weight=-1"),
    ("model.code_dim=0", r"model\.code_dim=0"),
    ("model/coder=conv data.image_size=28", r"data\.image_size=28"),
])
def test_bad_settings_are_named(make_cfg, override, named):
    assert re.search(named, str(refusal(lambda: build(make_cfg("model=vae", *QUICK, *override.split())))))


# --- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, channels, size", [
    (FC, 1, 32),
    (CONV + ["model.likelihood=gaussian", "model.learn_std=true"], 3, 32),
], ids=["fc-grey", "conv-rgb-gaussian"])
def test_a_few_steps_log_both_terms_and_the_three_grids(make_cfg, overrides, channels, size):
    cfg = make_cfg(*QUICK, *overrides, f"data.channels={channels}", f"data.image_size={size}", "logger=none",
                   "model.num_examples=6", "model.interpolation_steps=4", "model.num_samples=9")
    datamodule, model, trainer = build(cfg)
    log_std = float(model.log_std.detach())
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("train/loss", "train/reconstruction", "train/kl", "val/loss", "val/reconstruction", "val/kl"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert float(metrics["train/kl"]) >= 0
    elbo = metrics["val/reconstruction"] + metrics["val/kl"]
    assert float(metrics["val/loss"]) == pytest.approx(float(elbo), rel=1e-5)
    if "model.learn_std=true" in overrides:
        assert isinstance(model.log_std, torch.nn.Parameter) and float(model.log_std.detach()) != log_std
        assert "train/gaussian_std" in metrics
    visuals = model.visuals()
    assert visuals["samples"][0].shape == (9, channels, size, size) and visuals["samples"][1] == 3
    images, per_row = visuals["reconstructions"]
    assert per_row == 6 and images.shape == (12, channels, size, size) and torch.equal(images[:6], model.examples)
    # 3 pairs a row: the first image, 4 decoded steps, the second image
    rows, per_row = visuals["interpolations"]
    assert per_row == 6 and rows.shape == (18, channels, size, size)
    assert torch.equal(rows[0], model.examples[0]) and torch.equal(rows[5], model.examples[3])
    assert torch.allclose(rows[1], images[6], atol=1e-6)  # step 0 decodes the first image's mu
    folder = Path(trainer.default_root_dir) / "samples"
    assert {f"{name}_latest.png" for name in visuals} <= {p.name for p in folder.iterdir()}


def test_gan_sample_and_gan_eval_on_a_vae_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(compose_train(run, [*QUICK, *FC, *QUIET, *POOLED]))
    ckpt = run / "checkpoints" / "last.ckpt"
    output = sample(OmegaConf.create({"ckpt_path": str(ckpt), "seed": 0, "device": "cpu", "num_samples": 6,
                                      "output": str(tmp_path / "vae.png"), "label": None, "nrow": 3}))
    assert Image.open(output).size == (3 * 34 + 2, 2 * 34 + 2)  # make_grid: 32 px images, 2 px padding
    record, _ = evaluate(compose_train(tmp_path, [f"ckpt_path={ckpt}"], config_name="eval"))
    assert record["protocol"]["model_kind"] == "generator"
    assert {"fid", "kid_mean", "probe_accuracy", "probe_accuracy_pixels"} <= set(record["scores"])
    assert 0 <= record["scores"]["probe_accuracy"]["mean"] <= 1


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    common = [*QUICK, *FC, *QUIET, "trainer.max_epochs=2", "trainer.deterministic=true"]
    expected, resumed = resumed_and_uninterrupted(tmp_path, common)
    assert same_state(expected["state_dict"], resumed["state_dict"])


# --- the world-flags experiment ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def flags(tmp_path_factory) -> Path:
    """A data folder holding a stand-in of the flags package (data=flags finds it and downloads nothing)."""
    from tests.test_flags import write_package

    root = tmp_path_factory.mktemp("flags")
    write_package(root / "svg-country-flags-1.2.10")
    return root


def test_the_flags_experiments_compare_a_conv_vae_and_dcgan_on_the_same_data(flags, tmp_path):
    tiny = [f"data.root={flags}", "data.batch_size=4", "trainer=cpu", "trainer.max_epochs=1",
            "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1", *QUIET]
    vae = compose_train(tmp_path / "vae", ["experiment=flags_vae", *tiny, "model.encoder.ndf=4", "model.decoder.ngf=4"])
    dcgan = compose_train(tmp_path / "dcgan", ["experiment=flags_dcgan", *tiny, "model.generator.ngf=4",
                                               "model.discriminator.ndf=4"])
    assert vae.data == dcgan.data and vae.data.image_size == 64 and vae.data.channels == 3
    default = {"vae": compose_train(tmp_path / "x", ["experiment=flags_vae", f"data.root={flags}"]),
               "dcgan": compose_train(tmp_path / "y", ["experiment=flags_dcgan", f"data.root={flags}"])}
    assert default["vae"].trainer.max_epochs == default["dcgan"].trainer.max_epochs == 200
    assert vae.model.encoder._target_.endswith("ConvEncoder") and vae.model.likelihood == "bernoulli"
    assert dcgan.model.generator._target_.endswith("DCGANGenerator")
    for name, cfg in (("vae", vae), ("dcgan", dcgan)):
        metrics = train(cfg)
        assert math.isfinite(metrics["train/loss" if name == "vae" else "train/g_loss"]), name
        assert (tmp_path / name / "checkpoints" / "last.ckpt").is_file()
    model, _ = load_model(tmp_path / "vae" / "checkpoints" / "last.ckpt")
    assert model.sample(2).shape == (2, 3, 64, 64)
