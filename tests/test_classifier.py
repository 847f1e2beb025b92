"""model=classifier: the digit classifier that the metrics use as feature network and label judge.

One real training run on the mnist_5k digits (2 epochs, ~15 s on 2 CPU cores) must classify the 500
held-out digits well, and its checkpoint must come back as a working Classifier."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_cli.assembly import load_model
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build
from gan_cli.config.schemas import validate_targets
from gan_cli.data import ImageDataModule
from gan_cli.data.sources import MNIST5k
from gan_cli.errors import UserError
from gan_cli.models.classic.classifier import Classifier, random_shift
from gan_cli.models.classic.classifier_nets import ConvClassifier
from tests.conftest import QUICK, SMALL
from tests.helpers import resumed_and_uninterrupted, same_state

FAST = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


# --- the network -----------------------------------------------------------------------------------
@pytest.mark.parametrize("channels, size, classes, widths, hidden", [(1, 32, 10, (32, 64, 128, 256), 128),
                                                                     (3, 64, 5, (8, 16), 16),
                                                                     (1, 28, 10, (8, 16, 32, 64), 32)])
def test_network_gives_logits_and_features(channels, size, classes, widths, hidden):
    net = ConvClassifier(channels, size, classes, widths=widths, hidden=hidden).eval()
    x = torch.randn(4, channels, size, size)
    assert net(x).shape == (4, classes)
    assert net.features(x).shape == (4, hidden) == (4, net.feature_dim)
    assert (net.features(x) >= 0).all()  # the hidden layer's ReLU activations
    # the logits are the output layer applied to the features
    assert torch.allclose(net(x), net.head(net.features(x)), atol=1e-6)


def test_network_without_classes_has_no_output_layer_and_rejects_tiny_images():
    net = ConvClassifier(1, 32, 0, hidden=16).eval()
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(net(x), net.features(x))
    with pytest.raises(ValueError, match="image_size >= 16"):
        ConvClassifier(1, 8, 10)


def test_random_shift_moves_each_image_by_its_own_offset():
    torch.manual_seed(0)
    images = torch.randn(64, 2, 9, 11)
    shifted = random_shift(images, 2)
    assert shifted.shape == images.shape
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    offsets = []
    for image, moved in zip(padded, shifted):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(image[:, dy:dy + 9, dx:dx + 11], moved)]
        assert len(found) == 1
        offsets.append(found[0])
    assert len(set(offsets)) > 10  # offsets are drawn per image, in both directions
    assert {dy for dy, _ in offsets} == set(range(5)) and {dx for _, dx in offsets} == set(range(5))


# --- the config --------------------------------------------------------------------------------------
def test_config_composes_validates_and_follows_the_data(make_cfg):
    cfg = make_cfg("model=classifier")
    validate_targets(cfg)
    model = instantiate(cfg.model)
    assert isinstance(model, Classifier)
    assert (model.num_classes, model.channels, model.image_size, model.feature_dim) == (10, 1, 32, 128)
    assert model.lr_decay == "cosine" and model.augment_shift == 0
    cfg = make_cfg("model=classifier", "data=fake", "data.channels=3", "data.image_size=64", "data.num_classes=4",
                   "model.network.hidden=32")
    model = instantiate(cfg.model).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 4) and model.features(x).shape == (2, 32) == (2, model.feature_dim)


def test_unlabelled_data_is_refused_with_the_fix(make_cfg):
    cfg = make_cfg("model=classifier", "data.num_classes=0")
    with pytest.raises(InstantiationException, match=r"data\.num_classes=0 \(no labels\)") as error:
        build(cfg)
    assert isinstance(error.value.__cause__, UserError)
    assert "labels_from_subfolders=true" in str(error.value)


def test_bad_settings_are_named(make_cfg):
    with pytest.raises(InstantiationException, match=r"model\.lr_decay='step'"):
        build(make_cfg("model=classifier", "data=fake", "model.lr_decay=step"))
    with pytest.raises(InstantiationException, match=r"model\.augment_shift=-1"):
        build(make_cfg("model=classifier", "data=fake", "model.augment_shift=-1"))


def test_a_short_run_on_synthetic_data_logs_train_and_held_out_metrics(make_cfg):
    cfg = make_cfg("model=classifier", "data=fake", "data.dataset.size=64", "data.batch_size=16", "trainer=cpu",
                   "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "model.augment_shift=2",
                   "logger=none", "callbacks=none", *FAST)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
        assert name in metrics and torch.isfinite(metrics[name]), name
    assert 0 <= float(metrics["val/accuracy"]) <= 1
    # the cosine schedule took the learning rate to zero over the run's 4 batches
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # resumed into its own run folder, as gan-train does
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, one_thread):
    # the learning-rate schedule, the shift augmentation's random draws and the held-out loop all resume
    common = ["model=classifier", "data=fake", "data.dataset.size=64", "data.batch_size=16", "trainer=cpu",
              "trainer.max_epochs=3", "trainer.deterministic=true", "model.augment_shift=2", "logger=none", *FAST]
    expected, resumed = resumed_and_uninterrupted(tmp_path, common)
    assert resumed["epoch"] == expected["epoch"] == 2
    assert same_state(expected["state_dict"], resumed["state_dict"])


# --- the held-out split ------------------------------------------------------------------------------
def test_datamodule_serves_the_whole_test_split_in_order_for_validation_and_test():
    datamodule = ImageDataModule(partial(MNIST5k), image_size=32, channels=1, num_classes=10, batch_size=64,
                                 in_memory=True)
    datamodule.setup("validate")
    assert datamodule.train_set is None  # evaluating alone does not build the training split
    for loader in (datamodule.val_dataloader(), datamodule.test_dataloader(), datamodule.val_dataloader()):
        labels = torch.cat([batch["label"] for batch in loader])
        assert len(labels) == 500 and torch.equal(labels.bincount(), torch.full((10,), 50))  # no batch dropped
        assert torch.equal(labels, datamodule.test_set.labels)  # in order, not shuffled
    # built once (the loaders fetch whole batches from the one in-memory split)
    assert datamodule.val_dataloader().dataset.items is datamodule.test_dataloader().dataset.items


def test_gan_training_never_builds_the_held_out_split(make_cfg, one_thread):
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "logger=none", "callbacks=none")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step > 0 and datamodule._test_set is None


# --- a real run on the mnist_5k digits ---------------------------------------------------------------
def held_out(ckpt: Path):
    """The model of a checkpoint and the data of its run, with the held-out (test split) loader."""
    model, config = load_model(ckpt)
    datamodule = instantiate(config["data"])
    return model, datamodule


@pytest.mark.slow
def test_training_on_mnist_digits_classifies_the_held_out_digits(digit_classifier):
    run, metrics = digit_classifier
    assert metrics["val/accuracy"] >= 0.9, metrics
    assert metrics["train/accuracy"] >= 0.8 and metrics["val/loss"] < 0.5, metrics
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    model, datamodule = held_out(ckpt)
    assert isinstance(model, Classifier) and not model.training
    correct, count, features, labels = 0, 0, [], []
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            logits = model(batch["image"])
            assert logits.shape == (len(batch["label"]), 10)
            correct += int((logits.argmax(1) == batch["label"]).sum())
            count += len(batch["label"])
            features.append(model.features(batch["image"]))
            labels.append(batch["label"])
    assert count == 500  # all 50 held-out digits of each class, none dropped
    # the checkpoint's weights are the ones validated at the end of the run
    assert correct / count == pytest.approx(metrics["val/accuracy"], abs=1e-6)
    # the feature space separates the classes: each digit's nearest other digit mostly has its label
    features, labels = torch.cat(features), torch.cat(labels)
    assert features.shape == (500, model.feature_dim) and model.feature_dim == 128
    distances = torch.cdist(features, features).fill_diagonal_(float("inf"))
    assert (labels[distances.argmin(1)] == labels).float().mean() >= 0.9
    # the test loop reports the same held-out accuracy
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (result,) = trainer.test(model, datamodule=datamodule, verbose=False)
    assert result["test/accuracy"] == pytest.approx(correct / count, abs=1e-6)


@pytest.mark.slow
def test_gan_sample_on_a_classifier_checkpoint_says_what_it_is(digit_classifier):
    ckpt = digit_classifier[0] / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match=r"holds a classifier .* gan-eval ckpt_path=") as error:
        sample(OmegaConf.create({"ckpt_path": str(ckpt), "seed": 0, "device": "cpu", "num_samples": 4,
                                 "output": "x.png", "label": None, "nrow": None}))
    assert "translate" not in str(error.value)
