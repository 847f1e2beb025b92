"""Image sources and the DataModule: MNIST5k, FakeImages, ImageFolder, torchvision datasets, and the
one-paragraph errors a user sees when data is missing or broken."""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets

from gan_cli.data import DataSpec, ImageDataModule
from gan_cli.data.datamodule import denormalize
from gan_cli.data.sources import FakeImages, ImageFolder, MNIST5k, torchvision_dataset
from gan_cli.errors import UserError, user_message


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------------------
# MNIST5k


@pytest.fixture(scope="module")
def mnist():
    return {split: MNIST5k(split) for split in ("train", "test", "all")}


def test_mnist5k_split_sizes(mnist):
    assert len(mnist["train"]) == 4500
    assert len(mnist["test"]) == 500
    assert len(mnist["all"]) == 5000
    assert torch.equal(torch.bincount(mnist["train"].labels, minlength=10), torch.full((10,), 450))
    assert torch.equal(torch.bincount(mnist["test"].labels, minlength=10), torch.full((10,), 50))
    assert torch.equal(torch.bincount(mnist["all"].labels, minlength=10), torch.full((10,), 500))


def _image_bytes(dataset: MNIST5k) -> set[bytes]:
    return {image.numpy().tobytes() for image in dataset.images}


def test_mnist5k_train_and_test_are_disjoint(mnist):
    train, test, everything = (_image_bytes(mnist[s]) for s in ("train", "test", "all"))
    assert len(train) == 4500 and len(test) == 500  # no duplicate digits inside a split
    assert not train & test
    assert train | test == everything


def test_mnist5k_items(mnist):
    images = mnist["train"].images
    assert images.dtype == torch.uint8
    assert images.shape == (4500, 1, 28, 28)
    image, label = mnist["test"][7]
    assert image.dtype == torch.uint8 and image.shape == (1, 28, 28)
    assert isinstance(label, int) and 0 <= label <= 9
    # real digits: dark background, bright strokes, in every image
    per_image_max = images.flatten(1).max(1).values
    assert (per_image_max > 100).all()
    assert images.float().mean() < 80
    assert images[:, :, 0, :].float().mean() < 5  # top row is background


def test_mnist5k_transform_and_bad_split():
    dataset = MNIST5k("test", transform=lambda image: image.float() / 255)
    image, _ = dataset[0]
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    with pytest.raises(UserError, match="split"):
        MNIST5k("validation")


# --------------------------------------------------------------------------------------------------------
# ImageDataModule


@pytest.fixture(scope="module")
def mnist_module():
    dm = ImageDataModule(partial(MNIST5k), image_size=32, channels=1, num_classes=10, batch_size=64,
                         in_memory=True)
    dm.setup("fit")
    return dm


def test_datamodule_batches_are_named_fields(mnist_module):
    torch.manual_seed(0)
    batch = next(iter(mnist_module.train_dataloader()))
    assert set(batch) == {"image", "label"}
    images, labels = batch["image"], batch["label"]
    assert images.dtype == torch.float32
    assert images.shape == (64, 1, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() == pytest.approx(-1.0)  # the background, normalised
    assert images.max() > 0.9
    assert labels.shape == (64,) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() <= 9
    assert mnist_module.spec == DataSpec(channels=1, image_size=32, num_classes=10)


def test_datamodule_serves_the_whole_train_split(mnist_module):
    assert len(mnist_module.train_set) == 4500
    loader = mnist_module.train_dataloader()
    assert len(loader) == 4500 // 64  # drop_last
    assert torch.equal(torch.bincount(mnist_module.train_set.labels), torch.full((10,), 450))


def test_denormalize_maps_back_to_unit_interval(mnist_module):
    images = mnist_module.train_set.images[:32]
    back = mnist_module.denormalize(images)
    assert back.min() >= 0 and back.max() <= 1
    assert torch.allclose(back, (images + 1) / 2, atol=1e-6)
    # out-of-range generator outputs are clamped
    assert torch.equal(denormalize(torch.tensor([-3.0, 3.0]).view(1, 1, 1, 2), [0.5], [0.5]).flatten(),
                       torch.tensor([0.0, 1.0]))


def test_normalise_then_denormalise_round_trips_the_pixels():
    dm = ImageDataModule(partial(MNIST5k), image_size=28, channels=1, in_memory=True)
    images = dm.build("test").images
    raw = MNIST5k("test").images.float() / 255
    assert torch.allclose(dm.denormalize(images), raw, atol=1e-5)


def test_datamodule_three_channels():
    dm = ImageDataModule(partial(MNIST5k), image_size=32, channels=3, num_classes=10, in_memory=True,
                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    test_set = dm.build("test")
    assert test_set.images.shape == (500, 3, 32, 32)
    assert torch.equal(test_set.images[:, 0], test_set.images[:, 1])  # grey digits in RGB
    assert torch.equal(test_set.images[:, 1], test_set.images[:, 2])
    back = dm.denormalize(test_set.images[:4])
    assert back.shape == (4, 3, 32, 32) and back.min() >= 0 and back.max() <= 1


def test_datamodule_rejects_a_batch_larger_than_the_data():
    dm = ImageDataModule(partial(FakeImages, size=10), image_size=16, channels=1, batch_size=64, in_memory=True)
    dm.setup()
    with pytest.raises(UserError, match=r"data\.batch_size"):
        dm.train_dataloader()


# --------------------------------------------------------------------------------------------------------
# FakeImages


def test_fake_images_are_deterministic():
    a, b, c = FakeImages(size=16, seed=3), FakeImages(size=16, seed=3), FakeImages(size=16, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.images, FakeImages(split="test", size=16, seed=3).images)


def test_fake_images_shapes_and_labels():
    data = FakeImages(size=40, channels=3, image_size=16, num_classes=4, seed=0)
    assert len(data) == 40
    assert data.images.shape == (40, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.min() >= 0 and data.labels.max() < 4
    assert data.labels.unique().numel() == 4
    image, label = data[5]
    assert image.shape == (3, 16, 16) and isinstance(label, int) and 0 <= label < 4


def test_fake_images_through_the_datamodule():
    dm = ImageDataModule(partial(FakeImages, size=32, channels=1, image_size=16, num_classes=10),
                         image_size=16, channels=1, num_classes=10, batch_size=8, in_memory=True)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 1, 16, 16)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


# --------------------------------------------------------------------------------------------------------
# ImageFolder


def _png(path: Path, color=(255, 0, 0), size=(20, 12), mode="RGB", fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


@pytest.fixture
def image_tree(tmp_path):
    root = tmp_path / "images"
    _png(root / "cats" / "a.png", (255, 0, 0))
    _png(root / "cats" / "b.jpg", (0, 255, 0))
    _png(root / "dogs" / "deep" / "deeper" / "c.png", (0, 0, 255))
    _png(root / "ants" / "d.PNG", 128, mode="L", fmt="PNG")  # upper-case suffix, greyscale
    _png(root / "top.png", (9, 9, 9))
    (root / "cats" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_finds_every_image(image_tree):
    data = ImageFolder(str(image_tree))
    names = sorted(p.name for p in data.files)
    assert names == ["a.png", "b.jpg", "c.png", "d.PNG", "top.png"]
    assert len(data) == 5
    assert data.labels == [-1] * 5 and data.classes == []
    for i in range(len(data)):
        image, label = data[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        assert label == -1


def test_image_folder_labels_from_subfolders(image_tree):
    data = ImageFolder(str(image_tree), labels_from_subfolders=True)
    assert data.classes == ["ants", "cats", "dogs"]
    by_name = {p.name: label for p, label in zip(data.files, data.labels)}
    assert by_name == {"d.PNG": 0, "a.png": 1, "b.jpg": 1, "c.png": 2, "top.png": -1}
    index = [p.name for p in data.files].index("c.png")
    image, label = data[index]
    assert label == 2 and image.getpixel((0, 0)) == (0, 0, 255)


def test_image_folder_through_the_datamodule(image_tree):
    dm = ImageDataModule(partial(ImageFolder, labels_from_subfolders=True), root=str(image_tree),
                         image_size=16, channels=3, num_classes=3, batch_size=5, in_memory=True)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (5, 3, 16, 16)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert sorted(batch["label"].tolist()) == [-1, 0, 1, 1, 2]
    grey = ImageDataModule(partial(ImageFolder), root=str(image_tree), image_size=8, channels=1, in_memory=True)
    assert grey.build("train").images.shape == (5, 1, 8, 8)


def test_image_folder_missing_folder(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(UserError) as info:
        ImageFolder(str(missing))
    message = str(info.value)
    assert str(missing.resolve()) in message
    assert "data.root" in message
    assert "Traceback" not in user_message(info.value)


def test_image_folder_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(UserError) as info:
        ImageFolder(str(empty))
    assert str(empty.resolve()) in str(info.value) and "data.root" in str(info.value)
    (empty / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no image files"):
        ImageFolder(str(empty))


def test_image_folder_file_instead_of_folder(tmp_path):
    path = _png(tmp_path / "one.png")
    with pytest.raises(UserError, match=r"data\.root"):
        ImageFolder(str(path))


@pytest.fixture
def corrupt_tree(tmp_path):
    root = tmp_path / "flags"
    _png(root / "good.png")
    _png(root / "also_good.png", (0, 0, 0))
    bad = root / "bad.png"
    bad.write_bytes(b"this is not a PNG \x00\x01\x02 garbage" * 10)
    return root, bad


def test_corrupt_image_raises_when_loaded(corrupt_tree):
    root, bad = corrupt_tree
    data = ImageFolder(str(root))  # listing does not open the files
    assert len(data) == 3
    names = [p.name for p in data.files]
    data[names.index("good.png")]  # a good file still loads
    with pytest.raises(UserError) as info:
        data[names.index("bad.png")]
    assert str(bad) in str(info.value)
    assert "corrupt" in str(info.value)


def test_corrupt_image_through_the_dataloader(corrupt_tree):
    root, bad = corrupt_tree
    dm = ImageDataModule(partial(ImageFolder), root=str(root), image_size=16, channels=3, batch_size=3,
                         num_workers=0, in_memory=False)
    dm.setup()
    loader = dm.train_dataloader()
    assert isinstance(loader, DataLoader) and loader.num_workers == 0
    with pytest.raises(UserError) as info:
        for _ in loader:
            pass
    assert str(bad) in str(info.value)
    shown = user_message(info.value)
    assert shown.startswith("The image file ") and "bad.png" in shown and "Traceback" not in shown


def test_corrupt_image_in_memory_fails_at_setup(corrupt_tree):
    root, bad = corrupt_tree
    dm = ImageDataModule(partial(ImageFolder), root=str(root), image_size=16, channels=3, batch_size=3,
                         in_memory=True)
    with pytest.raises(UserError, match="bad.png"):
        dm.setup()


def test_corrupt_image_in_a_worker_gives_the_same_message(corrupt_tree):
    root, bad = corrupt_tree
    direct = ImageFolder(str(root))
    with pytest.raises(UserError) as direct_info:
        direct[[p.name for p in direct.files].index("bad.png")]
    loader = DataLoader(ImageFolder(str(root)), batch_size=3, num_workers=1, collate_fn=lambda items: items)
    batches = iter(loader)
    try:
        with pytest.raises(UserError) as worker_info:
            next(batches)
    finally:
        batches._shutdown_workers()  # now, rather than whenever the garbage collector gets to it
    assert "Original Traceback" in str(worker_info.value)  # the worker's traceback is in the text...
    assert user_message(worker_info.value) == user_message(direct_info.value)  # ...and stripped for the user
    assert "bad.png" in user_message(worker_info.value)


# --------------------------------------------------------------------------------------------------------
# torchvision datasets


def _unreachable_url() -> str:
    """A local port with nothing listening: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.mark.parametrize("name,cls", [("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)])
def test_torchvision_download_failure_is_a_user_error(tmp_path, monkeypatch, name, cls):
    url = _unreachable_url()
    monkeypatch.setattr(cls, "mirrors", [url])
    root = tmp_path / "data"
    with pytest.raises(UserError) as info:
        torchvision_dataset(name, root=str(root), download=True)
    message = str(info.value)
    assert str(root.resolve()) in message
    assert f"data={name}" in message and "copy the folder" in message  # how to get the data
    assert "data=mnist_5k" in message  # and an alternative that needs no download
    assert url in message


def test_cifar10_download_failure_is_a_user_error(tmp_path, monkeypatch):
    url = _unreachable_url() + "cifar-10-python.tar.gz"
    monkeypatch.setattr(datasets.CIFAR10, "url", url)
    with pytest.raises(UserError) as info:
        torchvision_dataset("cifar10", root=str(tmp_path), download=True)
    assert str(tmp_path.resolve()) in str(info.value)
    assert url in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_torchvision_missing_data_without_download(tmp_path, name):
    with pytest.raises(UserError) as info:
        torchvision_dataset(name, root=str(tmp_path), download=False)
    assert str(tmp_path.resolve()) in str(info.value)
    assert "data.dataset.root" in str(info.value)


def test_torchvision_unknown_name(tmp_path):
    with pytest.raises(UserError, match="cifar10"):
        torchvision_dataset("imagenet", root=str(tmp_path))


# --------------------------------------------------------------------------------------------------------
# user_message


def test_user_message_strips_a_worker_traceback():
    text = (
        "Caught UserError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "/x/worker.py", line 349, in _worker_loop\n'
        "    data = fetcher.fetch(index)\n"
        '  File "/x/sources.py", line 120, in __getitem__\n'
        "    raise UserError(\n"
        "gan_cli.errors.UserError: the real message"
    )
    assert user_message(UserError(text)) == "the real message"
    assert user_message(RuntimeError(text.replace("gan_cli.errors.UserError", "RuntimeError"))) == \
        "the real message"


def test_user_message_keeps_plain_messages_and_wraps_long_ones():
    assert user_message(UserError("short and plain")) == "short and plain"
    long = " ".join(["word"] * 60)
    lines = user_message(UserError(long)).split("\n")
    assert len(lines) > 1 and all(len(line) <= 100 for line in lines)
    assert " ".join(lines) == long
    assert user_message(UserError("first\nsecond")) == "first\nsecond"  # paragraphs are kept
