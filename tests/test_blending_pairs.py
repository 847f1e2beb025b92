"""GP-GAN's training pairs (data=blending_folder): a pair pastes the centre (or a random square) of one image of
a scene into another image of the same scene, the pairs are drawn once from a seed with the first scenes held
out, and bad scene folders are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from gan_cli.data.blending import BlendingDataModule, SceneFolders
from gan_cli.data.translation import MissingSplit
from gan_cli.errors import UserError
from tests.gpgan_helpers import OFFSET, write_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("blending") / "scenes")


# --- the training pairs ------------------------------------------------------------------------------
def test_a_pair_pastes_the_centre_of_one_image_into_another_image_of_the_same_scene(scenes):
    datamodule = BlendingDataModule(SceneFolders, root=str(scenes), image_size=16, load_size=20, batch_size=4)
    pairs = datamodule.build("train")
    torch.manual_seed(0)
    for index in range(8):
        item = pairs[index]
        source_path, destination_path = pairs.pairs.paths(index)
        assert source_path.parent == destination_path.parent and source_path != destination_path
        mask = item["mask"].bool().expand(3, -1, -1)
        assert mask.sum() == 3 * 8 * 8 and mask[:, 4:12, 4:12].all()  # the centre square, half the side
        assert torch.equal(item["composite"][mask], item["source"][mask])
        assert torch.equal(item["composite"][~mask], item["target"][~mask])
        # source and target are cut by the same crop, and the target is the destination: source - target is the
        # constant by which the source's light is brighter
        shift = (int(source_path.stem) - int(destination_path.stem)) * OFFSET / 255 * 2  # in [-1, 1] units
        torch.testing.assert_close(item["source"] - item["target"], torch.full_like(item["target"], shift),
                                   atol=2e-5, rtol=0)


def test_pairs_are_drawn_once_from_a_seed_and_the_first_scenes_are_held_out(scenes):
    first, again = SceneFolders(str(scenes), train_pairs=20), SceneFolders(str(scenes), train_pairs=20)
    assert [first.paths(i) for i in range(20)] == [again.paths(i) for i in range(20)]
    assert len({first.paths(i) for i in range(20)}) > 5
    held_out = SceneFolders(str(scenes), split="test", test_scenes=0.5, test_pairs=6)
    training = SceneFolders(str(scenes), split="train", test_scenes=0.5)
    assert held_out.scenes == ["scene_0", "scene_1"] and training.scenes == ["scene_2", "scene_3"]
    assert len(held_out) == 6
    with pytest.raises(MissingSplit, match="test split has no scenes"):
        SceneFolders(str(scenes), split="test", test_scenes=0.05)
    # without held-out scenes the logged examples come from the training scenes, centre-cropped, and stay fixed
    datamodule = BlendingDataModule(SceneFolders, root=str(scenes), image_size=16, load_size=20, paste_at="random")
    examples = datamodule.examples(3)
    assert examples["composite"].shape == (3, 3, 16, 16)
    torch.testing.assert_close(examples, datamodule.examples(3))


def test_random_pastes_put_the_square_anywhere_in_the_crop(scenes):
    pairs = BlendingDataModule(SceneFolders, root=str(scenes), image_size=16, load_size=16, ratio=0.25,
                               paste_at="random").build("train")
    torch.manual_seed(0)
    corners = set()
    for index in range(20):
        rows, cols = torch.nonzero(pairs[index]["mask"][0], as_tuple=True)
        assert len(rows) == 16 and rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3
        corners.add((int(rows.min()), int(cols.min())))
    assert len(corners) > 10


def test_bad_scene_folders_are_named(tmp_path, scenes):
    with pytest.raises(UserError, match="does not exist"):
        SceneFolders(str(tmp_path / "nowhere"))
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("RGB", (8, 8)).save(loose / "a.png")
    with pytest.raises(UserError, match="holds no scene sub-folders: put the images of each scene in a sub-folder"):
        SceneFolders(str(loose))
    (loose / "lonely").mkdir()
    Image.new("RGB", (8, 8)).save(loose / "lonely" / "a.png")
    with pytest.raises(UserError, match="none of its 1 sub-folders holds two images"):
        SceneFolders(str(loose))
    broken = write_scenes(tmp_path / "broken", scenes=1, per_scene=2)
    (broken / "scene_0" / "1.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"scene_0/1.png is not an image"):
        SceneFolders(str(broken), train_pairs=1)
    with pytest.raises(UserError, match="data.load_size=8 is smaller than data.image_size=16"):
        BlendingDataModule(SceneFolders, root=str(scenes), image_size=16, load_size=8)
    with pytest.raises(UserError, match="data.paste_at=corner"):
        BlendingDataModule(SceneFolders, root=str(scenes), paste_at="corner")
