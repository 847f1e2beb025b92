"""model=capsnet: squash, routing by agreement, the margin loss on hand cases, the paper's parameter counts,
a few training steps on CPU with the perturbation figure, gan-eval's accuracy and the settings it refuses."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from gan_cli.assembly import load_model
from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.evaluation.evaluator import model_kind
from gan_cli.models.classic.capsnet import PERTURBATIONS, CapsNet, margin_loss
from gan_cli.models.classic.capsnet_nets import CapsuleDecoder, DigitCapsules, squash
from tests.conftest import QUICK, compose_train
from tests.helpers import resumed_and_uninterrupted, same_state

pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks (16-D digit capsules kept: the figure has one row per dimension)
SMALL = ["model=capsnet", "model.network.conv_channels=8", "model.network.primary_capsules=4",
         "model.network.primary_dim=4", "model.decoder.hidden=[16]"]


# --- the layers ------------------------------------------------------------------------------------
def test_squash_keeps_the_direction_and_shrinks_the_norm_below_one():
    s = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], requires_grad=True)
    v = squash(s)
    # |s| = 5 and 0.5: |v| = |s|^2 / (1 + |s|^2)
    assert torch.allclose(v.norm(dim=1), torch.tensor([25 / 26, 0.25 / 1.25, 0.0]), atol=1e-6)
    assert torch.allclose(v[0], torch.tensor([3.0, 4.0]) / 5 * 25 / 26, atol=1e-6)
    v.sum().backward()
    assert torch.isfinite(s.grad).all()  # a zero capsule has a gradient too
    torch.manual_seed(0)
    lengths = squash(torch.randn(1000, 16) * torch.logspace(-3, 2, 1000).unsqueeze(1)).norm(dim=1)
    assert (lengths < 1).all() and lengths[-1] > 0.999 and lengths[0] < 1e-4  # (float32 reaches 1 past |s| ~ 4000)


def routing_inputs(iterations: int, in_capsules: int = 12, classes: int = 5, dim: int = 6, in_dim: int = 4):
    torch.manual_seed(0)
    layer = DigitCapsules(in_capsules, in_dim, classes, dim, routing_iterations=iterations)
    u = squash(torch.randn(3, in_capsules, in_dim))
    return layer, u, torch.einsum("ijdk,nik->nijd", layer.weight, u)


def test_routing_couples_each_capsule_to_its_parents_with_weights_that_sum_to_one():
    layer, u, u_hat = routing_inputs(iterations=2)
    v, coupling = layer(u)
    assert coupling.shape == (3, 12, 5) and v.shape == (3, 5, 6)
    assert (coupling >= 0).all() and torch.allclose(coupling.sum(2), torch.ones(3, 12), atol=1e-6)
    # the second iteration by hand: uniform couplings, then agreements u_hat . v_1 as the routing logits
    v1 = squash(u_hat.sum(1) / 5)
    expected = torch.einsum("nijd,njd->nij", u_hat, v1).softmax(2)
    assert torch.allclose(coupling, expected, atol=1e-6)
    assert torch.allclose(v, squash(torch.einsum("nij,nijd->njd", expected, u_hat)), atol=1e-6)
    assert not torch.allclose(coupling, torch.full_like(coupling, 0.2))  # agreement moved them
    assert torch.allclose(layer(u)[1].sum(2), torch.ones(3, 12), atol=1e-6)


def test_one_routing_iteration_couples_uniformly():
    layer, u, u_hat = routing_inputs(iterations=1)
    v, coupling = layer(u)
    assert torch.allclose(coupling, torch.full((3, 12, 5), 0.2))
    assert torch.allclose(v, squash(u_hat.sum(1) / 5), atol=1e-6)


def test_the_decoder_sees_only_the_chosen_capsule():
    torch.manual_seed(0)
    decoder = CapsuleDecoder(num_classes=3, digit_dim=4, channels=2, image_size=5, hidden=[8])
    capsules, classes = torch.randn(2, 3, 4), torch.tensor([1, 2])
    out = decoder(capsules, classes)
    assert out.shape == (2, 2, 5, 5) and (out > 0).all() and (out < 1).all()
    other = capsules.clone()
    other[0, [0, 2]] = torch.randn(2, 4)  # not class 1
    other[1, 2] += 1  # class 2
    changed = decoder(other, classes)
    assert torch.equal(changed[0], out[0]) and not torch.allclose(changed[1], out[1])


# --- the margin loss ---------------------------------------------------------------------------------
def test_margin_loss_on_a_hand_case():
    lengths = torch.tensor([[0.95, 0.3, 0.05], [0.5, 0.2, 0.6]])
    labels = torch.tensor([0, 2])
    # row 0: present 0.95 > 0.9 costs 0; absent 0.3: 0.5 (0.3 - 0.1)^2 = 0.02; absent 0.05 < 0.1 costs 0
    # row 1: present 0.6: (0.9 - 0.6)^2 = 0.09; absent 0.5: 0.5 * 0.4^2 = 0.08; absent 0.2: 0.5 * 0.1^2 = 0.005
    assert float(margin_loss(lengths, labels)) == pytest.approx((0.02 + 0.175) / 2)
    # m+ 0.8, m- 0.25, lambda 1: row 0: 0.05^2; row 1: 0.2^2 + 0.25^2 + 0 = 0.1025
    assert float(margin_loss(lengths, labels, 0.8, 0.25, 1.0)) == pytest.approx((0.0025 + 0.1025) / 2)


# --- the config at the paper's size ------------------------------------------------------------------
def test_paper_sized_network_has_the_reference_parameter_counts(make_cfg):
    cfg = make_cfg("model=capsnet", "data=mnist_5k", "data.image_size=28")
    model = instantiate(cfg.model)
    assert isinstance(model, CapsNet) and model.network.digits.routing_iterations == 3
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(model.network) == 6_804_224 and count(model) == 8_215_568
    assert model.network.digits.weight.shape == (1152, 10, 16, 8)  # 6x6x32 primary capsules, W_ij 16x8
    with torch.no_grad():
        scores = model(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert scores.shape == (2, 10) and (scores >= 0).all() and (scores < 1).all()
    assert model.network.last_coupling.shape == (2, 1152, 10)
    assert model.features(torch.zeros(1, 1, 28, 28)).shape == (1, 160) == (1, model.feature_dim)
    without = instantiate(make_cfg("model=capsnet", "data.image_size=28", "model.reconstruction=false").model)
    assert without.decoder is None and count(without) == 6_804_224


def test_bad_settings_are_named_with_the_fix(make_cfg):
    def refused(*overrides: str) -> str:
        with pytest.raises(InstantiationException) as error:
            build(make_cfg(*SMALL, "data=fake", *overrides))
        cause = error.value
        while cause.__cause__ is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        assert isinstance(cause, UserError)
        return str(cause)

    assert "routing_iterations=0: routing needs at least 1 iteration" in refused("model.network.routing_iterations=0")
    message = refused("data.image_size=16")
    assert "needs data.image_size >= 17" in message and "data.image_size=28" in message
    assert "data.num_classes=0" in refused("data.num_classes=0")
    assert "model.reconstruction_weight=-1" in refused("model.reconstruction_weight=-1")
    assert "m_minus=0.95" in refused("model.m_minus=0.95")
    with pytest.raises(UserError, match="model=capsnet has no adversarial loss, so loss=hinge"):
        build(make_cfg(*SMALL, "data=fake", "loss=hinge"))
    datamodule, model, trainer = build(make_cfg(*SMALL, *QUICK, "logger=none", "callbacks=none",
                                                "model.figure_index=64"))
    with pytest.raises(UserError, match=r"model.figure_index=64: the held-out split has 64 images; choose 0 to 63"):
        trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 0  # refused before training


# --- training, figures, gan-eval ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 training batches of tiny CapsNet on synthetic digits, default callbacks (sample grids, checkpoints)."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("capsnet") / "run"
    cfg = compose_train(run, [*SMALL, *QUICK, "logger=none"])
    return run, train(cfg)


def test_a_short_run_logs_losses_and_held_out_accuracy(trained):
    _, metrics = trained
    for name in ("train/loss", "train/margin_loss", "train/reconstruction_sse", "train/accuracy", "val/accuracy",
                 "val/margin_loss", "val/reconstruction_sse"):
        assert name in metrics and torch.isfinite(torch.tensor(metrics[name])), name
    # the loss is the margin loss plus 0.0005 x the reconstruction's sum of squared errors (same batch)
    expected = metrics["train/margin_loss"] + 0.0005 * metrics["train/reconstruction_sse"]
    assert metrics["train/loss"] == pytest.approx(expected, rel=1e-5)
    assert 0 <= metrics["val/accuracy"] <= 1


def test_the_perturbation_figure_has_a_row_per_capsule_dimension(trained):
    run, _ = trained
    # grids of 32 px images with 2 px padding: 11 columns x 16 rows; reconstructions: 10 inputs above 10 outputs
    assert Image.open(run / "samples" / "perturbations_latest.png").size == (11 * 34 + 2, 16 * 34 + 2)
    assert Image.open(run / "samples" / "reconstructions_latest.png").size == (10 * 34 + 2, 2 * 34 + 2)


def test_the_middle_column_is_the_unperturbed_capsule(make_cfg):
    torch.manual_seed(0)
    model = instantiate(make_cfg(*SMALL, "data=fake").model)
    capsules = model.capsules(torch.randn(1, 1, 32, 32))[0]
    with torch.no_grad():
        images = model.perturbed(capsules, label=3).view(16, 11, 1, 32, 32)
        plain = model.decoder(capsules.unsqueeze(0), torch.tensor([3]))[0]
    assert torch.equal(PERTURBATIONS, torch.arange(-5, 6) * 0.05) and len(PERTURBATIONS) == 11
    assert torch.allclose(images[:, 5], plain.expand(16, 1, 32, 32), atol=1e-6)  # delta 0 in every row
    assert all(not torch.allclose(images[d, 0], images[d, 10]) for d in range(16))  # each dimension changes it
    # the other classes' capsules play no part: the perturbed capsule is the only one the decoder sees
    other = capsules.clone()
    other[0] += 1
    assert torch.equal(model.perturbed(other, label=3), model.perturbed(capsules, label=3))


def test_gan_eval_reports_held_out_accuracy_and_gan_sample_says_why_not(trained, tmp_path):
    run, metrics = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    record, _ = evaluate(compose_train(tmp_path, [f"ckpt_path={ckpt}"], config_name="eval"))
    assert record["protocol"]["model_kind"] == "classifier"
    # the mean over classes of the held-out recall, by hand from the checkpoint's class scores
    model, config = load_model(ckpt)
    test = instantiate(config["data"]).test_set
    images, labels = torch.stack([item["image"] for item in test]), torch.stack([item["label"] for item in test])
    with torch.no_grad():
        predicted = model(images).argmax(1)
    recall = [float((predicted[labels == c] == c).float().mean()) for c in range(10)]
    assert record["scores"]["accuracy"]["mean"] == pytest.approx(sum(recall) / 10, abs=1e-6)
    assert float((predicted == labels).float().mean()) == pytest.approx(metrics["val/accuracy"], abs=1e-6)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(model, datamodule=instantiate(config["data"]), verbose=False)
    assert tested["test/accuracy"] == pytest.approx(metrics["val/accuracy"], abs=1e-6)
    with pytest.raises(UserError, match="CapsNet classifies images .* gan-eval ckpt_path="):
        sample(OmegaConf.create({"ckpt_path": str(ckpt), "seed": 0, "device": "cpu", "num_samples": 4,
                                 "output": str(tmp_path / "x.png"), "label": None, "nrow": None, "gibbs_steps": None}))


def test_without_reconstruction_there_is_no_decoder_and_no_figure(make_cfg):
    cfg = make_cfg(*SMALL, *QUICK, "logger=none", "callbacks=none", "model.reconstruction=false",
                   "model.network.routing_iterations=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert model.decoder is None and model.visuals() == {} and trainer.global_step == 2
    assert "train/reconstruction_sse" not in trainer.callback_metrics
    assert torch.allclose(model.network.last_coupling, torch.tensor(0.1))  # 1 iteration: uniform over 10 digits
    assert model_kind(model) == "classifier"


def test_training_lowers_the_loss_on_a_fixed_batch(make_cfg):
    torch.manual_seed(0)
    model = instantiate(make_cfg(*SMALL, "data=fake", "data.image_size=20").model)
    images, labels = torch.rand(20, 1, 20, 20), torch.arange(20) % 10
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        _, margin, reconstruction = model.losses(images, labels)
        loss = margin + 0.0005 * reconstruction
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.25 * losses[0]
    # the scores separate the classes of the batch it learned
    assert (model(images * 2 - 1).argmax(1) == labels).float().mean() >= 0.9


def test_the_learning_rate_decays_as_the_reference_code(make_cfg):
    cfg = make_cfg(*SMALL, *QUICK, "logger=none", "callbacks=none", "model.lr_decay_rate=0.5",
                   "model.lr_decay_steps=2", "trainer.limit_val_batches=0")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    # 64 images in batches of 16: 4 steps; lr = 1e-3 x 0.5^(4 / 2)
    assert trainer.global_step == 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)


def test_the_network_sees_images_in_zero_one(make_cfg):
    model = instantiate(make_cfg(*SMALL, "data=fake").model)
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(model.unit_range(x * 2 - 1), x, atol=1e-6)  # data normalised with mean 0.5, std 0.5
    assert torch.allclose(model(x * 2 - 1), model.network(x).norm(dim=-1), atol=1e-6)
    assert torch.allclose(model.to_data_space(x), x * 2 - 1)



@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # resumed into its own run folder, as gan-train does
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    # Adam's moments, the decaying learning rate and the random shifts all resume
    common = [*SMALL, *QUICK, "trainer.max_epochs=2", "trainer.deterministic=true", "trainer.limit_val_batches=1",
              "model.lr_decay_steps=3", "logger=none", "callbacks=default"]
    expected, resumed = resumed_and_uninterrupted(tmp_path, common)
    assert resumed["epoch"] == expected["epoch"] == 1
    assert same_state(expected["state_dict"], resumed["state_dict"])
