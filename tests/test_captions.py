"""Caption data for the text-to-image models: the digit attribute measures, data=mnist_5k_captions (captions,
batches, embedding cache), and the text encoders. The StackGAN layout (data=cub, data=flowers) is in
tests/test_stackgan_layout.py."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from gan_cli.config.schemas import validate_targets
from gan_cli.data.captions import (
    DIGIT_WORDS,
    CaptionedImages,
    DigitCaptionsDataModule,
    attribute_buckets,
    digit_captions,
)
from gan_cli.data.digit_attributes import measure, size, slant, thickness
from gan_cli.errors import UserError
from gan_cli.text.cache import cache_path, cached_embeddings
from gan_cli.text.encoders import HashingEncoder, MiniLMEncoder
from tests.conftest import SMALL

FAST = ["trainer=cpu", "trainer.max_epochs=1", "logger=none", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false"]


# --- attribute measures ------------------------------------------------------------------------------
def bar(width: int, shear: float = 0.0, length: int = 20, image_size: int = 32) -> torch.Tensor:
    """A vertical stroke `width` px wide, its top shifted right by `shear` px per px of height."""
    image = torch.zeros(image_size, image_size)
    top = (image_size - length) // 2
    centre = (length - 1) / 2
    for row in range(top, top + length):
        left = round(image_size / 2 - width / 2 + shear * (centre - (row - top)))
        image[row, left:left + width] = 1
    return image


def test_thicker_strokes_measure_thicker_close_to_their_width():
    widths = [1, 2, 3, 4, 6]
    measured = thickness(torch.stack([bar(w) for w in widths]))
    assert (measured.diff() > 0).all()
    # 2 area / perimeter of a w x L box: 2wL / (2L + 2w)
    expected = torch.tensor([w * 20 / (20 + w) for w in widths], dtype=torch.float)
    assert torch.allclose(measured, expected, rtol=0.1)
    # grey anti-aliased edges: the same stroke at half intensity on one side stays between the widths
    soft = bar(3)
    rows = soft.sum(1) > 0
    soft[rows, soft.sum(0).nonzero().max() + 1] = 0.5
    assert thickness(bar(3)[None]) < thickness(soft[None]) < thickness(bar(4)[None])


def test_sheared_strokes_measure_slanted_with_the_sign_of_the_lean():
    measured = slant(torch.stack([bar(3), bar(3, 0.3), bar(3, -0.3), bar(3, 0.6)])[:, None]).tolist()
    assert abs(measured[0]) < 1e-6
    assert measured[1] == pytest.approx(0.3, abs=0.05) and measured[3] == pytest.approx(0.6, abs=0.05)
    assert measured[2] == pytest.approx(-measured[1], abs=1e-5)  # the mirror image leans left as much


def test_size_is_the_side_of_the_ink_box_square():
    images = torch.zeros(3, 1, 32, 32)
    images[0, 0, 4:20, 10:14] = 1.0   # 16 x 4 box
    images[1, 0, 2:27, 3:28] = 0.8   # 25 x 25
    images[1, 0, 10, 10] = 0.1        # faint ink below INK_LEVEL does not count
    assert size(images).tolist() == [8.0, 25.0, 0.0]
    assert set(measure(images)) == {"thickness", "slant", "size"}


# --- captions -----------------------------------------------------------------------------------------
def test_digit_captions_name_the_digit_and_its_attributes():
    captions = digit_captions(7, thickness=2, slant=2, size=1)
    assert len(captions) >= 5 and len(set(captions)) == len(captions)
    assert captions[0] == "a thick right-slanted seven"
    assert any("7" in c.split() or "7," in c for c in captions) and any("seven" in c for c in captions)
    assert all("seven" in c or "7" in c for c in captions)
    assert all("thick" in c for c in captions if "strokes" in c or "pen" in c)
    assert digit_captions(1, 1, 1, 0)[0] == "a medium upright one"
    assert digit_captions(3, 0, 0, 0)[2] == "a small left-slanted 3"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> DigitCaptionsDataModule:
    from tests.conftest import compose_train

    data_dir = tmp_path_factory.mktemp("data")
    cfg = compose_train(data_dir / "run", ["data=mnist_5k_captions", "text_encoder=hashing",
                                           f"paths.data_dir={data_dir}"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def test_captions_follow_labels_and_measured_attributes(digits):
    train = digits.train_set
    captions = digits.captions("train")
    assert len(captions) == len(train) == 4500
    labels, measures = digits.measured("train")
    for i in range(0, 4500, 97):
        word, num = DIGIT_WORDS[int(labels[i])], str(int(labels[i]))
        assert all(word in c.replace(",", "").split() or num in c.replace(",", "").split() for c in captions[i])
    # the words are the measures bucketed: "thick" digits measure thicker than "thin" ones, right > left
    thick = torch.tensor(["thick" in row[0] for row in captions])
    thin = torch.tensor([row[0].split()[1] == "thin" for row in captions])
    assert thick.sum() > 1000 and thin.sum() > 1000  # tertiles
    assert measures["thickness"][thick].min() > measures["thickness"][thin].max()
    right = torch.tensor(["right-slanted" in row[0] for row in captions])
    left = torch.tensor(["left-slanted" in row[0] for row in captions])
    assert left.sum() > 100 and measures["slant"][right].min() > 0 > measures["slant"][left].max()
    # the test split is bucketed with the training split's thresholds
    test_labels, test_measures = digits.measured("test")
    buckets = attribute_buckets(test_measures, test_labels, digits.thresholds)
    assert [row[0] for row in digits.captions("test")][:5] == [
        digit_captions(int(test_labels[i]), *(int(buckets[k][i]) for k in ("thickness", "slant", "size")))[0]
        for i in range(5)]


def test_batches_follow_the_caption_contract(digits):
    batch = next(iter(digits.train_dataloader()))
    n, dim = digits.batch_size, digits.text_encoder.dim
    assert batch["image"].shape == (n, 1, 32, 32) and batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["label"].shape == (n,) and batch["label"].dtype == torch.long
    assert batch["text"].shape == batch["wrong_text"].shape == (n, dim) and batch["text"].dtype == torch.float32
    # "text" is one of that image's captions, encoded
    train = digits.train_set
    item = train[123]
    own = digits.text_encoder.encode(digits.captions("train")[123])
    assert torch.isclose(own, item["text"], atol=1e-6).all(1).any()


def test_text_is_drawn_among_the_images_captions_and_wrong_text_has_another_label():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    table = torch.arange(12.0)[:, None]                 # caption row r embeds to [r]
    ids = torch.arange(12).view(6, 2)                   # image i has captions 2i, 2i+1
    items = [{"image": torch.zeros(1, 2, 2), "label": int(label)} for label in labels]
    data = CaptionedImages(items, labels, table, ids)
    seen = {i: set() for i in range(6)}
    for _ in range(60):
        for i in range(6):
            item = data[i]
            seen[i].add(int(item["text"]))
            wrong = int(item["wrong_text"]) // 2        # the image the wrong caption belongs to
            assert labels[wrong] != labels[i]
    assert all(seen[i] == {2 * i, 2 * i + 1} for i in range(6))  # both captions drawn
    # every image of another label is drawn as the mismatch
    assert {data.mismatched(2) for _ in range(200)} == {0, 1, 3, 4, 5}


# --- embedding cache ----------------------------------------------------------------------------------
class CountingEncoder(HashingEncoder):
    def __init__(self) -> None:
        super().__init__(dim=8)
        self.calls = 0

    def encode(self, captions):
        self.calls += 1
        return super().encode(captions)


def test_cache_is_reused_and_recomputed_when_corrupt_or_mismatched(tmp_path):
    encoder, captions = CountingEncoder(), ["a thin seven", "a thick seven"]
    first = cached_embeddings(encoder, captions, tmp_path)
    again = cached_embeddings(encoder, captions, tmp_path)
    assert encoder.calls == 1 and torch.equal(first, again)
    assert torch.equal(first, HashingEncoder(dim=8).encode(captions))
    cached_embeddings(encoder, captions[::-1], tmp_path)  # other captions: another file
    assert encoder.calls == 2 and len(list(tmp_path.glob("*.pt"))) == 2

    path = cache_path(tmp_path, encoder.name, captions)
    path.write_bytes(path.read_bytes()[:50])              # truncated
    with pytest.warns(UserWarning, match="not usable.*cannot be read"):
        assert torch.equal(cached_embeddings(encoder, captions, tmp_path), first)
    assert encoder.calls == 3
    assert torch.equal(cached_embeddings(encoder, captions, tmp_path), first) and encoder.calls == 3  # rewritten
    torch.save({"encoder": encoder.name, "captions_hash": "other", "embeddings": first}, path)
    with pytest.warns(UserWarning, match="other captions"):
        cached_embeddings(encoder, captions, tmp_path)
    torch.save({"encoder": encoder.name, "captions_hash": "x", "embeddings": first[:1]}, path)
    with pytest.warns(UserWarning, match="not usable"):
        cached_embeddings(encoder, captions, tmp_path)
    assert encoder.calls == 5
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files left


def test_datamodule_encodes_each_caption_once_and_reuses_the_cache(tmp_path):
    from functools import partial

    from gan_cli.data.sources import FakeImages

    encoder = CountingEncoder()
    kwargs = dict(dataset=partial(FakeImages, size=64), image_size=32, channels=1, num_classes=10, in_memory=True,
                  cache_dir=str(tmp_path))
    datamodule = DigitCaptionsDataModule(encoder, **kwargs)
    first = datamodule.build("test")
    assert encoder.calls == 1
    assert len(first.table) == len({c for row in datamodule.captions("test") for c in row}) < 6 * 64
    second = DigitCaptionsDataModule(encoder, **kwargs).build("test")
    assert encoder.calls == 1 and torch.equal(first.table, second.table) and torch.equal(first.ids, second.ids)


# --- the runner, configs --------------------------------------------------------------------------------
def test_a_conditional_gan_trains_on_caption_batches(make_cfg, tmp_path, one_thread):
    from gan_cli.commands.train import train

    cfg = make_cfg("model=cgan", *SMALL["cgan"], "data=mnist_5k_captions", "text_encoder=hashing",
                   f"paths.data_dir={tmp_path / 'data'}", *FAST, "+trainer.limit_train_batches=2")
    train(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "data" / "text_embeddings").glob("hashing_64_0-*.pt"))


def test_config_checks_data_keys_and_the_encoder_must_encode(make_cfg, tmp_path):
    with pytest.raises(UserError, match="Unknown config key data.cache_dri"):
        validate_targets(make_cfg("data=mnist_5k_captions", "text_encoder=hashing", "+data.cache_dri=x"))
    cfg = make_cfg("data=mnist_5k_captions", "text_encoder=precomputed", "data.cache_dir=null")
    with pytest.raises(UserError, match="exist only for the captions.*text_encoder=minilm"):
        instantiate(cfg.data).build("test")


# --- the encoders -------------------------------------------------------------------------------------------
def test_hashing_encoder_is_deterministic_and_shared_words_bring_captions_closer():
    a, b = HashingEncoder(dim=64), HashingEncoder(dim=64)
    captions = ["a thick seven", "a thin seven", "a red bird on a branch"]
    x = a.encode(captions)
    assert x.shape == (3, 64) and torch.equal(x, b.encode(captions))
    assert not torch.equal(x, HashingEncoder(dim=64, seed=1).encode(captions))
    cos = torch.nn.functional.cosine_similarity
    assert cos(x[0], x[1], 0) > cos(x[0], x[2], 0) + 0.2
    assert torch.allclose(a.encode(["Seven, THICK a"]), x[:1])  # bag of words: order and case ignored
    assert torch.equal(a.encode([""]), torch.zeros(1, 64))


def test_minilm_gives_384_d_embeddings_offline_that_tell_thick_from_thin(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    x = MiniLMEncoder().encode(["a thick seven", "a thin seven", "a thick seven"])
    assert x.shape == (3, 384) and torch.isfinite(x).all()
    assert torch.allclose(x[0], x[2], atol=1e-5)
    assert (x[0] - x[1]).norm() > 0.1
    assert torch.allclose(x.norm(dim=1), torch.ones(3), atol=1e-4)  # the model's Normalize layer
