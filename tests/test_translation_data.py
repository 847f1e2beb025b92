"""Translation data (CycleGAN's unpaired folders, pix2pix's side-by-side pairs) and its DataModule:
shapes and ranges, joint crops and flips for pairs, direction, deterministic examples, user errors,
and the data configs."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gan_cli.config.schemas import validate_targets
from gan_cli.data import TranslationDataModule
from gan_cli.data.translation import PairedFolder, UnpairedFolders
from gan_cli.errors import UserError, user_message

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 20  # px of every image (each half of a pair)
#: values of the unpaired images: A image i is filled with A_VALUES[i], B image j with B_VALUES[j]
A_VALUES, B_VALUES = (0, 40, 80), (120, 160, 200, 240)


def _fill(path: Path, value: int, size: tuple[int, int] = (SIZE, SIZE)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def unpaired(tmp_path) -> Path:
    """trainA/ (3 images), trainB/ (4), testA/ (2), testB/ (2): constant images that name themselves."""
    root = tmp_path / "unpaired"
    for split in ("train", "test"):
        count = 3 if split == "train" else 2
        for i, value in enumerate(A_VALUES[:count]):
            _fill(root / f"{split}A" / f"a{i}.png", value)
        for j, value in enumerate(B_VALUES[: 4 if split == "train" else 2]):
            _fill(root / f"{split}B" / f"b{j}.png", value)
    return root


@pytest.fixture
def paired(tmp_path) -> Path:
    """train/ (4 pairs) and val/ (2 pairs), no test/: A is random noise, B = 255 - A."""
    root = tmp_path / "paired"
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i}.png")
    return root


def _module(dataset, root: Path, **kwargs) -> TranslationDataModule:
    options = dict(crop_size=16, load_size=18, batch_size=2, num_workers=0)
    return TranslationDataModule(partial(dataset), root=str(root), **{**options, **kwargs})


def _value(image: torch.Tensor) -> int:
    """The fill value of a constant image normalised with mean = std = 0.5."""
    return round(float((image.mean() + 1) / 2 * 255))


# --------------------------------------------------------------------------------------------------------
# batches


@pytest.mark.parametrize("dataset, folder", [(UnpairedFolders, "unpaired"), (PairedFolder, "paired")])
def test_batches_have_the_right_shapes_and_range(dataset, folder, request):
    dm = _module(dataset, request.getfixturevalue(folder))
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"A", "B"}
    for images in batch.values():
        assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1
    assert dm.spec.image_size == 16 and dm.spec.channels == 3 and dm.spec.num_classes == 0
    assert dm.denormalize(batch["A"]).min() >= 0


def test_grayscale_and_preprocess_options(paired):
    dm = _module(PairedFolder, paired, channels=1, mean=[0.5], std=[0.5], preprocess="resize", flip=False)
    item = dm.build("train", train=True)[0]
    assert item["A"].shape == (1, 16, 16)
    none = _module(PairedFolder, paired, preprocess="none").build("train", train=True)[0]
    assert none["A"].shape == (3, SIZE, SIZE)


def test_test_loader_is_ordered_and_keeps_the_last_batch(unpaired):
    dm = _module(UnpairedFolders, unpaired, batch_size=3)
    batches = list(dm.test_dataloader())
    assert [len(b["A"]) for b in batches] == [2]
    assert [_value(image) for image in batches[0]["A"]] == list(A_VALUES[:2])


# --------------------------------------------------------------------------------------------------------
# pairs: one crop and one flip for both halves


def _find(original: np.ndarray, crop: np.ndarray) -> tuple[int, int, bool]:
    """Where `crop` (H, W, C) lies in `original`, and whether it is flipped."""
    size = crop.shape[0]
    for flipped in (False, True):
        source = original[:, ::-1] if flipped else original
        for y in range(original.shape[0] - size + 1):
            for x in range(original.shape[1] - size + 1):
                if np.array_equal(source[y:y + size, x:x + size], crop):
                    return y, x, flipped
    raise AssertionError("the transformed A is no crop of the original A")


def test_paired_crop_and_flip_are_joint(paired):
    torch.manual_seed(0)
    dataset = _module(PairedFolder, paired, preprocess="crop").build("train", train=True)
    original = np.asarray(Image.open(paired / "train" / "0.png"))[:, :SIZE]
    places = set()
    for _ in range(16):
        item = dataset[0]
        torch.testing.assert_close(item["B"], -item["A"], atol=1e-6, rtol=0)  # B = 255 - A after crop and flip
        a = ((item["A"] + 1) / 2 * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        places.add(_find(original, a))
    assert len(places) > 4 and {flipped for _, _, flipped in places} == {False, True}


def test_paired_resize_and_crop_stay_aligned(paired):
    torch.manual_seed(1)
    dataset = _module(PairedFolder, paired).build("train", train=True)
    for index in range(4):
        item = dataset[index]
        assert (item["A"] + item["B"]).abs().max() < 0.05  # bicubic rounding only


def test_direction_btoa_swaps_a_and_b(paired):
    ab = _module(PairedFolder, paired).examples(2)
    ba = _module(PairedFolder, paired, direction="BtoA").examples(2)
    assert torch.equal(ab["A"], ba["B"]) and torch.equal(ab["B"], ba["A"])
    torch.testing.assert_close(ab["B"], -ab["A"], atol=0.05, rtol=0)


def test_paired_test_split_falls_back_to_val(paired):
    dataset = PairedFolder(str(paired), "test")
    assert dataset.split == "val" and len(dataset) == 2


# --------------------------------------------------------------------------------------------------------
# unpaired: B random in training, serial otherwise


def test_unpaired_b_is_random_in_train_and_serial_in_test(unpaired):
    dm = _module(UnpairedFolders, unpaired, flip=False)
    train = dm.build("train", train=False)
    assert len(train) == 4  # the larger domain
    torch.manual_seed(0)
    a_values = [_value(train[i]["A"]) for i in range(4)]
    assert a_values == [0, 40, 80, 0]  # A cycles through the smaller domain
    torch.manual_seed(0)
    drawn = [_value(train[i % 4]["B"]) for i in range(40)]
    assert set(drawn) == set(B_VALUES) and drawn[:4] != list(B_VALUES)
    torch.manual_seed(0)
    assert [_value(train[i % 4]["B"]) for i in range(40)] == drawn  # torch's RNG decides
    test = dm.build("test", train=False)
    assert [_value(test[i]["B"]) for i in range(2)] == list(B_VALUES[:2])
    assert [_value(test[i]["B"]) for i in range(2)] == list(B_VALUES[:2])


def test_examples_are_deterministic(unpaired, paired):
    for dataset, root in ((UnpairedFolders, unpaired), (PairedFolder, paired)):
        dm = _module(dataset, root)
        first, second = dm.examples(2), dm.examples(2)
        assert first["A"].shape == (2, 3, 16, 16)
        assert all(torch.equal(first[k], second[k]) for k in ("A", "B"))
    # without a test split, the examples come from the train split, still fixed, and leave the RNG alone
    for sub in ("testA", "testB"):
        for path in (unpaired / sub).iterdir():
            path.unlink()
        (unpaired / sub).rmdir()
    dm = _module(UnpairedFolders, unpaired)
    state = torch.get_rng_state()
    first, second = dm.examples(3), dm.examples(3)
    assert torch.equal(torch.get_rng_state(), state)
    assert [_value(a) for a in first["A"]] == list(A_VALUES)
    assert all(torch.equal(first[k], second[k]) for k in ("A", "B"))


# --------------------------------------------------------------------------------------------------------
# errors a user can fix


def _message(excinfo) -> str:
    return user_message(excinfo.value)


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist") as info:
        UnpairedFolders(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(info.value) and "trainA/" in str(info.value)


def test_missing_train_b(unpaired):
    for path in (unpaired / "trainB").iterdir():
        path.unlink()
    (unpaired / "trainB").rmdir()
    with pytest.raises(UserError, match="no trainB/ folder") as info:
        _module(UnpairedFolders, unpaired).prepare_data()
    assert str(unpaired) in str(info.value)


def test_folder_without_images(paired):
    for path in (paired / "train").iterdir():
        path.unlink()
    with pytest.raises(UserError, match="holds no image files"):
        PairedFolder(str(paired))


def test_unreadable_files_are_named(unpaired):
    bad = unpaired / "trainA" / "a1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # cut short: the header reads, the pixels do not (found at its batch)
    with pytest.raises(UserError, match=f"{bad} cannot be read"):
        UnpairedFolders(str(unpaired))[1]
    bad.write_bytes(b"not a png")  # not an image at all: found when the folder is read
    with pytest.raises(UserError, match=f"{bad} is not an image"):
        UnpairedFolders(str(unpaired))


def test_too_narrow_pair_names_the_file(tmp_path):
    _fill(tmp_path / "train" / "thin.png", 0, size=(1, 8))
    with pytest.raises(UserError, match="too narrow") as info:
        PairedFolder(str(tmp_path))[0]
    assert "thin.png" in str(info.value)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(preprocess="scale_width"), "resize_and_crop, crop, resize, none"),
    (dict(direction="AB"), "AtoB or BtoA"),
    (dict(crop_size=32, load_size=18), "larger than data.load_size"),
    (dict(channels=1), "data.mean has 3 values"),
])
def test_bad_options(paired, kwargs, expected):
    with pytest.raises(UserError, match=expected):
        _module(PairedFolder, paired, **kwargs)


def test_fewer_images_than_one_batch(paired):
    dm = _module(PairedFolder, paired, batch_size=8)
    dm.setup("fit")
    with pytest.raises(UserError, match="fewer than one batch"):
        dm.train_dataloader()


# --------------------------------------------------------------------------------------------------------
# configs

NAMED = {"horse2zebra": "AtoB", "monet2photo": "AtoB", "summer2winter_yosemite": "AtoB", "apple2orange": "AtoB",
         "vangogh2photo": "AtoB", "cezanne2photo": "AtoB", "ukiyoe2photo": "AtoB", "iphone2dslr_flower": "AtoB",
         "facades": "BtoA", "maps": "AtoB", "edges2shoes": "AtoB", "edges2handbags": "AtoB",
         "cityscapes": "BtoA", "night2day": "AtoB"}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_data_configs_validate(make_cfg, name):
    cfg = make_cfg(f"data={name}", "data.crop_size=128")
    validate_targets(cfg.data)  # the data node: the default model (DCGAN) wants data.image_size
    data = cfg.data
    assert data.dataset.name == name and data.root == cfg.paths.data_dir
    assert data.direction == NAMED[name] and data.load_size == 143 and data.batch_size == 1
    unpaired = data.dataset._target_.endswith("UnpairedFolders")
    assert unpaired == (name in list(NAMED)[:8])
    if name == "cityscapes":
        assert data.dataset.url is None and not data.dataset.download
    else:
        assert data.dataset.download
        assert data.dataset.url == ("http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/" + name + ".zip" if unpaired
                                    else "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/" + name + ".tar.gz")


@pytest.mark.parametrize("config, folder", [("unpaired_folder", "unpaired"), ("paired_folder", "paired")])
def test_folder_configs_build_a_datamodule(make_cfg, request, config, folder):
    root = request.getfixturevalue(folder)
    cfg = make_cfg(f"data={config}", f"data.root={root}", "data.crop_size=16", "data.num_workers=0",
                   "data.batch_size=2")
    validate_targets(cfg.data)
    assert cfg.data.load_size == 18 and cfg.data.dataset.name is None
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["B"].shape == (2, 3, 16, 16)


def test_folder_config_needs_a_root(make_cfg):
    with pytest.raises(UserError, match="data.root"):
        validate_targets(make_cfg("data=unpaired_folder").data)
