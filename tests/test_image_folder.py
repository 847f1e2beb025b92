"""Image folders as a data source (ImageFolder): every image found, labels from sub-folders, through the
DataModule; and the one-paragraph errors a user sees when the folder is missing or empty or an image is corrupt
(loaded directly, through a DataLoader, in memory, in a worker process), with user_message's stripping of
worker tracebacks and wrapping of long messages."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from PIL import Image
from torch.utils.data import DataLoader

from gan_cli.data import ImageDataModule
from gan_cli.data.sources import ImageFolder
from gan_cli.errors import UserError, user_message

pytestmark = pytest.mark.usefixtures("one_thread")


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
    bad = _png(root / "bad.png")
    bad.write_bytes(bad.read_bytes()[:45])  # cut short: its header reads, its pixels do not
    return root, bad


def test_a_file_that_is_not_an_image_is_named_when_the_folder_is_listed(corrupt_tree):
    root, _ = corrupt_tree
    (root / "notes.png").write_bytes(b"this is not a PNG \x00\x01\x02 garbage" * 10)
    with pytest.raises(UserError, match=r"notes\.png is not an image"):
        ImageFolder(str(root))


def test_corrupt_image_raises_when_loaded(corrupt_tree):
    root, bad = corrupt_tree
    data = ImageFolder(str(root))  # listing reads only the headers
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
