"""Text-to-image pieces and model=text_cgan (GAN-INT-CLS): the matching-aware discriminator's three pairs and
loss values, conditioning augmentation and its KL, both conditional discriminator styles (cgan's too), a few
training steps on the captioned digits with a resume, and gan-sample text= / text_file=."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from gan_cli.data.captions import TextImageDataModule, encoded_captions, takes_base_arguments
from gan_cli.data.datamodule import ImageDataModule, dataset_labels
from gan_cli.errors import UserError
from gan_cli.losses import LeastSquaresLoss, NonSaturatingLoss
from gan_cli.losses.matching import matching_discriminator_terms, matching_terms
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.text_cgan import TextCGAN, captioned_rows
from gan_cli.nets.conditional_heads import ConditionalHead
from gan_cli.nets.conditioning import ConditioningAugmentation, kl_to_standard_normal
from gan_cli.nets.dcgan import DCGANDiscriminator
from gan_cli.nets.mlp import MLPDiscriminator
from gan_cli.nets.text_gan import TextDiscriminator, TextGenerator
from gan_cli.runner import build, train
from gan_cli.sampling import sample
from tests.conftest import QUICK, SMALL, compose_train

pytestmark = pytest.mark.usefixtures("one_thread")

#: a quick run on the captioned digits with the dependency-free text encoder and tiny networks
TEXT_QUICK = ["model=text_cgan", "data=mnist_5k_captions", "text_encoder=hashing", "model.generator.ngf=4",
              "model.discriminator.ndf=4", "model.generator.code_dim=8", "model.discriminator.code_dim=8",
              "model.generator.latent_dim=8", "data.batch_size=8", "trainer=cpu", "trainer.max_epochs=1",
              "+trainer.limit_train_batches=3", "trainer.enable_progress_bar=false",
              "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1", "logger=csv"]


@takes_base_arguments
class FakeCaptions(TextImageDataModule):
    """data=fake with two captions per image naming its label: a captioned stand-in that builds in milliseconds."""

    def captions(self, split: str, items=None) -> list[list[str]]:
        items = ImageDataModule.build(self, split) if items is None else items
        return [[f"a digit {label}", f"the number {label} drawn"] for label in dataset_labels(items).tolist()]

    def caption_table(self, split: str, items) -> tuple[torch.Tensor, torch.Tensor]:
        return encoded_captions(self.text_encoder, self.captions(split, items), None)


#: the quick run on the stand-in captions
FAKE_QUICK = [*TEXT_QUICK, "data=fake", "data.dataset.size=32", f"data._target_={__name__}.FakeCaptions",
              "+data.text_encoder=${text_encoder}", "logger=none", "callbacks=none"]


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


# --- training on the captioned digits ------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three steps of gan-train model=text_cgan on mnist_5k_captions (hashing encoder), then a resumed epoch."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("text_cgan") / "run"
    first = train(compose_train(run, TEXT_QUICK))
    ckpt = run / "checkpoints" / "last.ckpt"
    first_state = torch.load(ckpt, weights_only=False)
    resumed = train(compose_train(run, [*TEXT_QUICK, "trainer.max_epochs=2", f"ckpt_path={ckpt}"]))
    return run, first, first_state, resumed


def test_text_cgan_trains_with_finite_losses_and_logs_its_captioned_figure(trained):
    run, first, _, _ = trained
    for name in ("train/d_loss", "train/g_loss", "train/g_interpolation", "train/D_x_wrong_text"):
        assert math.isfinite(first[name]), name
    assert (run / "samples" / "captions_epoch000.png").is_file()


def test_resume_goes_on_with_the_saved_state(trained):
    run, _, first_state, resumed = trained
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert first_state["gan_cli"]["d_updates"] == 3 and final["gan_cli"]["d_updates"] == 6
    assert int(final["state_dict"]["bank_count"]) == 6 * 8  # the caption bank went on filling
    figure = final["gan_cli"]["figure_captions"]
    assert figure == first_state["gan_cli"]["figure_captions"] and len(figure) == 10
    assert torch.equal(final["state_dict"]["figure_text"], first_state["state_dict"]["figure_text"])
    assert math.isfinite(resumed["train/g_loss"])


def test_d_sees_three_pairs_and_g_the_interpolated_captions_in_a_training_step(make_cfg, monkeypatch):
    calls = []
    forward = TextDiscriminator.forward
    monkeypatch.setattr(TextDiscriminator, "forward",
                        lambda self, x, text: calls.append(text.detach().clone()) or forward(self, x, text))
    train(make_cfg(*FAKE_QUICK, "++trainer.limit_train_batches=1"))
    text, d_fake, wrong, g_text, g_mixed = calls  # D: (x, h), (G(z), h), (x, h_wrong); G: h, then INT
    assert torch.equal(d_fake, text) and torch.equal(g_text, text) and not torch.equal(wrong, text)
    partners = 2 * g_mixed - text  # beta = 0.5: each row the mean of its caption and another of the batch
    distances = torch.cdist(partners, text)
    assert torch.allclose(distances.min(1).values, torch.zeros(len(text)), atol=1e-5)


def test_interpolation_off_and_conditioning_augmentation_on(make_cfg):
    metrics = train(make_cfg(*FAKE_QUICK, "model.interpolation=0", "model.generator.conditioning_augmentation=true",
                             "model.discriminator.condition_style=separate"))
    assert "train/g_interpolation" not in metrics and math.isfinite(metrics["train/kl"])
    assert math.isfinite(metrics["train/g_loss"])


def test_text_cgan_needs_captioned_data(make_cfg):
    cfg = make_cfg(*TEXT_QUICK, "data=fake", "data.dataset.size=16", "logger=none", "callbacks=none")
    with pytest.raises(UserError, match="data=mnist_5k_captions"):
        train(cfg)


def test_sample_draws_for_training_captions_of_a_label_or_for_given_embeddings(trained):
    run, _, _, _ = trained
    from gan_cli.checkpoint import load_model

    model, _ = load_model(str(run / "checkpoints" / "last.ckpt"))
    assert isinstance(model, TextCGAN) and model.text_conditional and model.num_classes == 10
    assert model.sample(4).shape == (4, 1, 32, 32)
    assert model.sample(3, torch.tensor([7, 7, 1])).shape == (3, 1, 32, 32)
    torch.manual_seed(0)
    one = model.sample(2, text=torch.zeros(1, 64))
    torch.manual_seed(0)
    assert torch.equal(one, model.sample(2, text=torch.zeros(2, 64)))
    with pytest.raises(UserError, match="do not fit"):
        model.sample(2, text=torch.zeros(2, 5))


def test_an_untrained_model_asks_for_captions(make_cfg):
    _, module, _ = build(make_cfg(*TEXT_QUICK))
    with pytest.raises(UserError, match="text="):
        module.sample(2)


# --- gan-sample text= / text_file= ---------------------------------------------------------------------
def sample_cfg(ckpt: Path, output: Path | str, **settings):
    base = {"ckpt_path": str(ckpt), "seed": 0, "device": "cpu", "num_samples": 3, "label": None, "nrow": None,
            "chain": False, "gibbs_steps": None, "text": None, "text_file": None, "output": str(output)}
    return OmegaConf.create(base | settings)


def test_gan_sample_draws_a_row_per_caption(trained, tmp_path):
    from PIL import Image

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    one = sample(sample_cfg(ckpt, tmp_path / "one.png", text="a thick slanted seven"))
    captions = tmp_path / "captions.txt"
    captions.write_text("a thin upright one\n\n  a large zero  \n")
    many = sample(sample_cfg(ckpt, tmp_path / "many.png", text_file=str(captions)))
    (w1, h1), (w2, h2) = Image.open(one).size, Image.open(many).size
    assert h1 == 36 and h2 == 2 * 36  # one row of 32 px samples (with padding) per caption, blank lines skipped
    assert min(w1, w2) > 3 * 34 + 2 + 40  # the caption written beside the row of 3 samples
    folder = sample(sample_cfg(ckpt, f"{tmp_path / 'each'}/", text_file=str(captions)))
    assert len(list(folder.glob("*.png"))) == 2 * 3


def test_gan_sample_text_errors(trained, tmp_path):
    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    cases = [({"text": "a seven", "text_file": str(empty)}, "not both"),
             ({"text_file": str(tmp_path / "missing.txt")}, "does not exist"),
             ({"text_file": str(empty)}, "holds no caption"),
             ({"text": "a seven", "label": 7}, "label= and text=")]
    for settings, message in cases:
        with pytest.raises(UserError, match=message):
            sample(sample_cfg(ckpt, tmp_path / "x.png", **settings))


def test_gan_sample_refuses_text_for_a_model_without_text(make_cfg, tmp_path):
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], "logger=none", "callbacks.sample_grid=null",
                   "+trainer.limit_train_batches=1")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match="text-to-image"):
        sample(sample_cfg(ckpt, tmp_path / "x.png", text="a seven"))
