"""data=cub and data=flowers on a tiny fake of StackGAN's published layout (pickles of keys, classes and
char-CNN-RNN embeddings beside the jpg images): batches carry the published embeddings and labels, birds are
cropped around their boxes, missing files are named with where to get them, and another text encoder reads
the caption texts instead."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gan_cli.config.schemas import validate_targets
from gan_cli.errors import UserError
from gan_cli.text.encoders import HashingEncoder, PrecomputedEncoder


# --- the StackGAN layout (data=cub, data=flowers) --------------------------------------------------------
def dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        pickle.dump(obj, file, protocol=2)


def write_layout(root: Path, layout: str, per_split: int = 4, captions: int = 3, dim: int = 1024) -> dict:
    """A tiny fake of the published layout: pickles of keys, classes and embeddings; jpg images."""
    rng = np.random.default_rng(0)
    made = {}
    index_lines, box_lines = [], []
    for s, split in enumerate(("train", "test")):
        keys, classes = [], []
        for i in range(per_split):
            cls = 1 + 2 * s + i % 2
            key = f"{cls:03d}.Bird_{cls}/Bird_{s}_{i}" if layout == "birds" else f"jpg/image_{s}{i:04d}"
            folder = root / ("CUB_200_2011/images" if layout == "birds" else "")
            path = folder / f"{key}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.zeros((60, 80, 3), np.uint8)
            pixels[20:40, 30:50] = 255  # the "bird": white, inside its box
            Image.fromarray(pixels).save(path)
            keys.append(key)
            classes.append(cls)
            index_lines.append(f"{len(index_lines) + 1} {key}.jpg")
            box_lines.append(f"{len(box_lines) + 1} 30.0 20.0 20.0 20.0")
        embeddings = rng.standard_normal((per_split, captions, dim)).astype(np.float32)
        dump(root / split / "filenames.pickle", keys)
        dump(root / split / "class_info.pickle", classes)
        dump(root / split / "char-CNN-RNN-embeddings.pickle", embeddings)
        made[split] = (keys, classes, embeddings)
    if layout == "birds":
        (root / "CUB_200_2011" / "images.txt").write_text("\n".join(index_lines) + "\n")
        (root / "CUB_200_2011" / "bounding_boxes.txt").write_text("\n".join(box_lines) + "\n")
    return made


@pytest.mark.parametrize("data, layout", [("cub", "birds"), ("flowers", "flowers")])
def test_stackgan_layout_batches_carry_the_published_embeddings(make_cfg, tmp_path, data, layout):
    made = write_layout(tmp_path / layout, layout)
    cfg = make_cfg(f"data={data}", "text_encoder=precomputed", f"paths.data_dir={tmp_path}", "data.batch_size=4",
                   "data.num_workers=0", "data.image_size=16")
    validate_targets(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["text"].shape == batch["wrong_text"].shape == (4, 1024)
    assert set((batch["label"] + 1).tolist()) <= set(made["train"][1])  # labels are the class ids - 1
    test = datamodule.test_set
    item = test[1]
    assert int(item["label"]) == made["test"][1][1] - 1
    published = torch.from_numpy(made["test"][2][1])
    assert torch.isclose(published, item["text"]).all(1).any()      # one of that image's embeddings
    assert not torch.isclose(published, item["wrong_text"]).all(1).any()
    if layout == "birds":  # cropped around the box: a square of 1.5 x its side, the white bird in the middle
        image = datamodule.denormalize(item["image"][None])[0]
        assert image[:, 8, 8].min() > 0.9 and image[:, 0, 0].max() < 0.1


def test_stackgan_layout_reports_missing_files_and_refuses_new_sentences(make_cfg, tmp_path):
    cfg = make_cfg("data=cub", "text_encoder=precomputed", f"paths.data_dir={tmp_path}")
    with pytest.raises(UserError, match=r"birds/train/filenames.pickle does not exist.*drive.google.com.*CUB-200"):
        instantiate(cfg.data).prepare_data()
    with pytest.raises(UserError, match="exist only for the captions of the dataset.*text_encoder=minilm"):
        PrecomputedEncoder().encode(["a small red bird"])


def test_stackgan_layout_with_another_encoder_reads_the_caption_texts(tmp_path):
    root = tmp_path / "flowers"
    made = write_layout(root, "flowers", captions=2, dim=8)
    cfg = dict(dataset=instantiate({"_target_": "gan_cli.data.stackgan_layout.StackGANImages", "_partial_": True,
                                    "layout": "flowers"}),
               root=str(root), image_size=16, channels=3, num_classes=102, batch_size=2, cache_dir=str(tmp_path))
    from gan_cli.data.stackgan_layout import StackGANDataModule

    with pytest.raises(UserError, match="add text_encoder=precomputed"):
        StackGANDataModule(HashingEncoder(dim=8), **cfg).build("train")
    for i, key in enumerate(made["train"][0]):
        (root / "text_c10" / f"{key}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "text_c10" / f"{key}.txt").write_text(f"a flower number {i}\nthis flower has {i} petals\n")
    datamodule = StackGANDataModule(HashingEncoder(dim=8), **cfg)
    item = datamodule.build("train")[2]
    assert datamodule.captions("train")[2] == ["a flower number 2", "this flower has 2 petals"]
    assert torch.isclose(HashingEncoder(dim=8).encode(datamodule.captions("train")[2]), item["text"]).all(1).any()
