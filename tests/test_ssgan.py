"""model=ssgan (Salimans et al. 2016) and data.labels_per_class: the few-labels split, the K+1-class
discriminator's losses, its test accuracy, and the classifier baseline that learns from the labels alone."""

from __future__ import annotations

import math
from functools import partial
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from gan_cli.commands.train import build
from gan_cli.config.schemas import validate_targets
from gan_cli.data import ImageDataModule
from gan_cli.data.sources import FakeImages
from gan_cli.errors import UserError
from gan_cli.models.gans.ssgan import SSGAN, real_logit, supervised_loss
from gan_cli.models.gans.ssgan_nets import SSGANDiscriminator, SSGANGenerator
from tests.conftest import POOLED, QUICK

pytestmark = pytest.mark.usefixtures("one_thread")

#: tiny networks: a training step takes milliseconds
TINY = ["model=ssgan", "model.generator.hidden=[16]", "model.discriminator.hidden=[32,16]"]
#: 128 fake images (8 to 19 of each class) in batches of 16: 8 steps
FEW_LABELS = [*QUICK, *TINY, "data.dataset.size=128", "data.labels_per_class=3", "logger=none", "callbacks=none"]


def fake_module(size: int = 200, in_memory: bool = True, **kwargs) -> ImageDataModule:
    return ImageDataModule(partial(FakeImages, size=size, image_size=8, num_classes=10), image_size=8, channels=1,
                           num_classes=10, batch_size=16, in_memory=in_memory, **kwargs)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- data.labels_per_class ---------------------------------------------------------------------------
@pytest.mark.parametrize("in_memory", [True, False])
def test_labels_per_class_keeps_exactly_n_per_class_and_unlabels_the_rest(in_memory):
    dm = fake_module(in_memory=in_memory, labels_per_class=3)
    dm.setup("fit")
    source = FakeImages(size=200, image_size=8, num_classes=10)
    items = [dm.train_set[i] for i in range(len(dm.train_set))]
    labels = torch.tensor([int(item["label"]) for item in items])
    assert len(items) == 200
    assert torch.equal(torch.bincount(labels[labels >= 0], minlength=10), torch.full((10,), 3))
    assert int((labels == -1).sum()) == 200 - 30
    kept = labels >= 0
    assert torch.equal(labels[kept], source.labels[kept])  # the kept labels are the true ones
    # every item carries a labelled example: subset[i % 30], one of the 30 kept images with its true label
    subset = torch.nonzero(kept).flatten()
    assert torch.equal(dm.train_set.subset.sort().values, subset)
    for i, item in enumerate(items):
        j = int(dm.train_set.subset[i % 30])
        assert kept[j] and int(item["labelled_label"]) == int(source.labels[j])
        assert torch.equal(item["labelled_image"], items[j]["image"])
    # each labelled example is served the same number of times per epoch (within one)
    served = torch.bincount(torch.tensor([int(dm.train_set.subset[i % 30]) for i in range(200)]))
    assert served[subset].min() >= 200 // 30 and served[subset].max() <= 200 // 30 + 1
    # a batch holds a full batch of labelled examples
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "label", "labelled_image", "labelled_label"}
    assert batch["labelled_image"].shape == batch["image"].shape == (16, 1, 8, 8)
    assert (batch["labelled_label"] >= 0).all() and batch["label"].dtype == torch.int64
    # the test split is untouched
    assert torch.equal(torch.tensor([int(dm.test_set[i]["label"]) for i in range(len(dm.test_set))]),
                       FakeImages(split="test", size=200, image_size=8, num_classes=10).labels)


def test_labelled_subset_is_fixed_by_its_seed():
    def subset(**kwargs):
        dm = fake_module(labels_per_class=3, **kwargs)
        dm.setup("fit")
        return dm.train_set.subset

    torch.manual_seed(1)
    first = subset()
    torch.manual_seed(2)  # the global random state does not matter
    assert torch.equal(first, subset()) and torch.equal(first, subset(labelled_seed=0))
    assert not torch.equal(first, subset(labelled_seed=1))
    assert torch.equal(subset(in_memory=False), first)


def test_labels_per_class_is_off_by_default():
    dm = fake_module()
    dm.setup("fit")
    assert set(dm.train_set[0]) == {"image", "label"}


def test_labels_per_class_errors_say_what_to_do():
    with pytest.raises(UserError, match=r"has only 14 of that class.*at most 14"):
        fake_module(labels_per_class=15).setup("fit")
    with pytest.raises(UserError, match=r"data\.num_classes=0.*labels_per_class=null"):
        ImageDataModule(partial(FakeImages, size=32), image_size=8, channels=1, num_classes=0, labels_per_class=2)
    with pytest.raises(UserError, match=r"at least 1"):
        fake_module(labels_per_class=0)


# --- the losses ----------------------------------------------------------------------------------------
def test_real_logit_is_one_minus_the_generated_class_probability():
    logits = torch.randn(6, 4)
    with_generated = torch.cat([logits, torch.zeros(6, 1)], dim=1)  # class K+1's logit fixed at 0
    p_generated = with_generated.softmax(1)[:, -1]
    assert torch.allclose(torch.sigmoid(real_logit(logits)), 1 - p_generated, atol=1e-6)


def test_unsupervised_loss_is_the_papers_formula(make_cfg):
    model = instantiate(make_cfg("model=ssgan", "data=fake", "model.discriminator.hidden=[8]").model)
    model.discriminator = nn.Identity()  # the "images" are the logits themselves
    # hand case, K = 2: real logits (0, 0): Z = 2, p(generated) = 1/3; fake logits (0, ln 3): Z = 4, p(generated) = 1/5
    real, fake = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(3.0)]])
    terms, _, _ = model.discriminator_terms(model.critic(), real, fake)
    assert set(terms) == {"real", "fake"}
    assert float(terms["real"]) == pytest.approx(-math.log(1 - 1 / 3))  # -log(1 - p(K+1 | x))
    assert float(terms["fake"]) == pytest.approx(-math.log(1 / 5))  # -log p(K+1 | G(z))
    # and on random logits against the (K+1)-way softmax written out
    torch.manual_seed(0)
    real, fake = 3 * torch.randn(16, 10), 3 * torch.randn(16, 10)
    terms, _, _ = model.discriminator_terms(model.critic(), real, fake)
    p_gen = lambda logits: torch.cat([logits, torch.zeros(len(logits), 1)], 1).softmax(1)[:, -1]  # noqa: E731
    paper = -(torch.log(1 - p_gen(real)).mean() + torch.log(p_gen(fake)).mean())
    assert float(terms["real"] + terms["fake"]) == pytest.approx(float(paper), rel=1e-5)


def test_supervised_loss_is_cross_entropy_over_the_labelled_examples():
    logits, labels = torch.randn(5, 3), torch.tensor([0, 2, -1, 1, -1])
    known = labels >= 0
    assert torch.allclose(supervised_loss(logits, labels), F.cross_entropy(logits[known], labels[known]))
    assert float(supervised_loss(logits, torch.full((5,), -1))) == 0.0


# --- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["feature_matching", "adversarial"])
def test_trains_a_few_steps_with_few_labels(make_cfg, objective):
    cfg = make_cfg(*FEW_LABELS, f"model.generator_objective={objective}", "model.lr_constant_epochs=1",
                   "model.lr_decay_epochs=1", "trainer.max_epochs=1")
    datamodule, model, trainer = build(cfg)
    assert isinstance(model, SSGAN) and model.num_classes == 0 and model.classes == 10
    before_g, before_d = weights(model.generator), weights(model.discriminator)
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/d_supervised", "train/d_unsupervised", "train/g_loss", "train/accuracy"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert 0 <= float(metrics["train/accuracy"]) <= 1
    changed = lambda before, now: any(not torch.equal(before[k], now[k]) for k in before)  # noqa: E731
    assert changed(before_g, weights(model.generator)) and changed(before_d, weights(model.discriminator))
    assert model.d_updates == 8 and trainer.global_step == 16
    # the learning rate decays after the constant epoch
    assert trainer.optimizers[1].param_groups[0]["lr"] == pytest.approx(model.d_lr / 2)
    # an unconditional generator of images in [-1, 1]
    samples = model.sample(5)
    assert samples.shape == (5, 1, 32, 32) and samples.abs().max() <= 1
    with pytest.raises(UserError, match="unconditional"):
        model.sample(2, torch.zeros(2, dtype=torch.long))
    assert model.visuals()["samples"][0].shape == (64, 1, 32, 32)
    assert model.classify(torch.randn(3, 1, 32, 32)).shape == (3, 10)


def test_without_labels_per_class_every_label_is_used(make_cfg):
    cfg = make_cfg(*QUICK, *TINY, "logger=none", "callbacks=none")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert math.isfinite(float(trainer.callback_metrics["train/d_supervised"]))


def test_gan_eval_metrics_include_the_test_accuracy(make_cfg):
    cfg = make_cfg(*FEW_LABELS, *POOLED, "metrics.scores=[fid]")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    accuracy = float(trainer.callback_metrics["metrics/accuracy"])
    assert 0 <= accuracy <= 1 and "metrics/fid" in trainer.callback_metrics


def test_config_validates_and_unlabelled_data_is_refused(make_cfg):
    validate_targets(make_cfg("model=ssgan", "data=mnist_5k", "data.labels_per_class=10"))
    model = instantiate(make_cfg("model=ssgan", "data=mnist_5k").model)
    assert model.generator_objective == "feature_matching" and isinstance(model.loss, nn.Module)
    assert isinstance(model.discriminator.score_layer, nn.Linear)
    with pytest.raises(InstantiationException, match=r"data\.num_classes=0"):
        instantiate(make_cfg("model=ssgan", "data.num_classes=0").model)
    with pytest.raises(InstantiationException, match=r"model\.generator_objective='l2'"):
        instantiate(make_cfg("model=ssgan", "model.generator_objective=l2").model)


# --- the networks --------------------------------------------------------------------------------------
def test_networks_shapes_features_and_noise():
    torch.manual_seed(0)
    generator, discriminator = SSGANGenerator(100, 1, 28), SSGANDiscriminator(1, 28, 10)
    images = generator(torch.randn(4, 100))
    assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1
    assert isinstance(discriminator.score_layer, nn.Linear) and discriminator.score_layer.out_features == 10
    discriminator.eval()  # no noise: deterministic, and the logits are the score layer on the features
    features = discriminator.features(images)
    assert features.shape == (4, 250) == (4, discriminator.feature_dim) and (features >= 0).all()
    assert torch.allclose(discriminator(images), discriminator.score_layer(features))
    discriminator.train()  # Gaussian noise while training
    assert not torch.equal(discriminator(images), discriminator(images))
    hidden = [m for m in discriminator.body if isinstance(m, nn.Linear)]
    assert [m.out_features for m in hidden] == [1000, 500, 250, 250, 250]
    assert all(hasattr(m, "parametrizations") for m in [*hidden, discriminator.score_layer])  # weight norm


# --- evaluation ----------------------------------------------------------------------------------------
class _Logits(nn.Module):
    """A 'discriminator' whose logits are its input images, flattened."""

    num_classes = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def test_evaluation_scores_match_a_hand_count(make_cfg):
    model = instantiate(make_cfg("model=ssgan", "data=fake", "model.discriminator.hidden=[8]").model)
    model.discriminator, model.classes = _Logits(), 3
    predicted, labels = [0, 1, 2, 0, 1, 2], [0, 1, 1, 0, 2, -1]  # 3 right of the 5 labelled
    items = [{"image": F.one_hot(torch.tensor(p), 3).float(), "label": torch.tensor(y)} for p, y in zip(predicted, labels)]
    asked = []
    datamodule = SimpleNamespace(build=lambda split: asked.append(split) or items, num_workers=0)
    scores = model.evaluation_scores(SimpleNamespace(reference_split="test", batch_size=4), datamodule)
    assert asked == ["test"] and scores == {"accuracy": pytest.approx(3 / 5)}


# --- the classifier baseline ---------------------------------------------------------------------------
def test_classifier_baseline_learns_from_the_labelled_examples_only(make_cfg):
    cfg = make_cfg(*QUICK, "model=classifier", "model.network.widths=[4,8]", "model.network.hidden=8",
                   "data.dataset.size=128", "data.labels_per_class=2", "logger=none", "callbacks=none")
    datamodule, model, trainer = build(cfg)
    seen: list[torch.Tensor] = []
    model.network.register_forward_pre_hook(lambda net, args: seen.append(args[0].detach().clone()) if net.training else None)
    trainer.fit(model, datamodule=datamodule)
    train_set = datamodule.train_set
    labelled = torch.stack([train_set[int(j)]["image"] for j in train_set.subset])  # the 20 labelled images
    assert len(seen) == 128 // 16  # one step per batch, as without labels_per_class
    for batch in seen:
        for image in batch:
            assert (labelled - image).flatten(1).abs().amax(1).min() == 0  # one of the labelled images
