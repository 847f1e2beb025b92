"""model=text_cgan (GAN-INT-CLS) end to end: a few training steps on the captioned digits with a resume, what D
and G see in a training step (three pairs, interpolated captions), its settings, sampling for captions or given
embeddings, and gan-sample text= / text_file=. Its building blocks (the matching-aware discriminator,
conditioning augmentation, the conditional heads) are in tests/test_text_conditioning.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli.commands.sample import sample
from gan_cli.commands.train import build, train
from gan_cli.data.captions import TextImageDataModule, encoded_captions, takes_base_arguments
from gan_cli.data.datamodule import ImageDataModule, dataset_labels
from gan_cli.errors import UserError
from gan_cli.models.contract import TextSampler
from gan_cli.models.text_to_image.text_cgan import TextCGAN
from gan_cli.models.text_to_image.text_cgan_nets import TextDiscriminator
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
    from gan_cli.assembly import load_model

    model, _ = load_model(str(run / "checkpoints" / "last.ckpt"))
    assert isinstance(model, TextCGAN) and isinstance(model, TextSampler) and model.num_classes == 10
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
