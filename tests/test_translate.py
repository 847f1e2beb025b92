"""gan-translate: one generator of a pix2pix or CycleGAN checkpoint over a folder of images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli.checkpoint import read_checkpoint
from gan_cli.commands.sample import sample
from gan_cli.commands.train import train
from gan_cli.commands.translate import load_generator, translate
from gan_cli.errors import UserError
from gan_cli.models.translation.base import translate_images
from gan_cli.nets import PatchGANDiscriminator, ResnetGenerator
from tests.conftest import QUICK, SMALL, compose_train, run_cli, translation_quick


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, image_pairs) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("translate_runs")
    paths = {}
    for model, args in [("cyclegan", translation_quick("cyclegan", image_pairs)),
                        ("pix2pix", translation_quick("pix2pix", image_pairs)),
                        ("dcgan", [*QUICK, *SMALL["dcgan"]])]:
        train(compose_train(root / model, [*args, "logger=none", "callbacks=checkpoints"]))
        paths[model] = root / model / "checkpoints" / "last.ckpt"
    return paths


@pytest.fixture
def photos(tmp_path) -> Path:
    """Images of sizes the networks do not take as they are (not multiples of 4), one in a sub-folder."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (37, 21, 3), dtype=np.uint8)).save(folder / "more" / "tall.png")
    return folder


def cfg(**values):
    return OmegaConf.create({"direction": "AtoB", "inference": None, "device": "cpu", **values})


def test_gan_translate_writes_each_image_at_its_own_size_under_its_own_name(tmp_path, checkpoints, photos):
    out = tmp_path / "out"
    result = run_cli([f"ckpt_path={checkpoints['cyclegan']}", f"input={photos}", f"output={out}", "direction=AtoB"],
                     tmp_path, module="gan-translate")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Translated 2 images AtoB with G_A" in result.stdout
    for name, size in [("wide.png", (42, 30)), ("more/tall.png", (21, 37))]:
        assert Image.open(out / name).size == size
    # the file holds what G_A makes of the image (up to 8-bit rounding)
    generator, _ = load_generator(read_checkpoint(checkpoints["cyclegan"]), "AtoB")
    x = torch.from_numpy(np.asarray(Image.open(photos / "wide.png"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
    expected = (translate_images(generator, x[None])[0] + 1) / 2
    written = torch.from_numpy(np.asarray(Image.open(out / "wide.png"), dtype=np.float32) / 255).permute(2, 0, 1)
    assert (written - expected).abs().max() < 1 / 255 + 1e-4


def test_cyclegan_translates_both_ways_with_its_two_generators(tmp_path, checkpoints, photos):
    ckpt = read_checkpoint(checkpoints["cyclegan"])
    assert load_generator(ckpt, "AtoB")[1] == "G_A" and load_generator(ckpt, "BtoA")[1] == "G_B"
    a_to_b, _ = translate(cfg(ckpt_path=str(checkpoints["cyclegan"]), input=str(photos), output=str(tmp_path / "ab")))
    b_to_a, _ = translate(cfg(ckpt_path=str(checkpoints["cyclegan"]), input=str(photos), output=str(tmp_path / "ba"),
                              direction="BtoA"))
    assert [p.name for p in a_to_b] == [p.name for p in b_to_a] == ["tall.png", "wide.png"]
    assert not np.array_equal(np.asarray(Image.open(a_to_b[1])), np.asarray(Image.open(b_to_a[1])))
    # a model trained with data.direction=BtoA has its domains swapped
    ckpt["gan_cli"]["config"]["data"]["direction"] = "BtoA"
    assert load_generator(ckpt, "AtoB")[1] == "G_B"


def test_only_the_needed_generator_is_built(checkpoints, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a discriminator was built")

    monkeypatch.setattr(PatchGANDiscriminator, "__init__", refuse)
    generator, name = load_generator(read_checkpoint(checkpoints["cyclegan"]), "BtoA")
    assert isinstance(generator, ResnetGenerator) and name == "G_B"


def test_pix2pix_translates_the_direction_it_learned(tmp_path, checkpoints, photos):
    written, _ = translate(cfg(ckpt_path=str(checkpoints["pix2pix"]), input=str(photos), output=str(tmp_path / "o")))
    assert Image.open(written[1]).size == (42, 30)  # U-Net of depth 5: padded to 64 x 32, cropped back
    ckpt = read_checkpoint(checkpoints["pix2pix"])
    with pytest.raises(UserError, match="translates AtoB only.*use direction=AtoB"):
        load_generator(ckpt, "BtoA")
    ckpt["gan_cli"]["config"]["data"]["direction"] = "BtoA"
    assert load_generator(ckpt, "BtoA")[1] == "G"
    with pytest.raises(UserError, match="translates BtoA only"):
        load_generator(ckpt, "AtoB")


def test_bad_inputs_are_named_and_good_images_are_still_translated(tmp_path, checkpoints, photos):
    ckpt = str(checkpoints["cyclegan"])
    with pytest.raises(UserError, match="use gan-translate"):
        sample(OmegaConf.create({"ckpt_path": ckpt, "seed": 0, "device": "cpu", "num_samples": 4}))
    with pytest.raises(UserError, match="needs an image-to-image model"):
        translate(cfg(ckpt_path=str(checkpoints["dcgan"]), input=str(photos), output=str(tmp_path / "o")))
    with pytest.raises(UserError, match="would overwrite the originals"):
        translate(cfg(ckpt_path=ckpt, input=str(photos), output=str(photos)))
    with pytest.raises(UserError, match="does not exist"):
        translate(cfg(ckpt_path=ckpt, input=str(tmp_path / "nowhere"), output=str(tmp_path / "o")))
    with pytest.raises(UserError, match="choose AtoB or BtoA"):
        translate(cfg(ckpt_path=ckpt, input=str(photos), output=str(tmp_path / "o"), direction="AB"))
    (photos / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.png"):
        translate(cfg(ckpt_path=ckpt, input=str(photos), output=str(tmp_path / "kept")))
    assert (tmp_path / "kept" / "wide.png").is_file() and (tmp_path / "kept" / "more" / "tall.png").is_file()
