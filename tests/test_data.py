"""Built-in image sources and the DataModule: MNIST5k's splits and items, ImageDataModule's batches and
normalisation, FakeImages, and the torchvision datasets' one-paragraph errors when their data is missing or
cannot be downloaded. Image folders (ImageFolder) are in tests/test_image_folder.py."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import torch
from torchvision import datasets

from gan_cli.data import DataSpec, ImageDataModule
from gan_cli.data.datamodule import denormalize
from gan_cli.data.sources import FakeImages, MNIST5k, torchvision_dataset
from gan_cli.errors import UserError

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
