"""data=flags: the flags obtained with the real npm client (here from a local package folder, as `npm pack` packs
one offline), the tarball's SHA-256 checked (a wrong one leaves nothing behind), the GitHub archive used where npm
is missing (served from 127.0.0.1), and each flag letterboxed onto a grey square."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gan_cli.data import flags
from gan_cli.data.flags import FLAGS, PAD, RESOLUTIONS, letterbox
from tests.helpers import refusal
from tests.test_download import _Server

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="the npm client is not installed here")


def write_package(folder: Path) -> Path:
    """A stand-in of svg-country-flags 1.2.10: its package.json and 256 small 3:2 PNGs at each resolution, flag i
    two bands of colours drawn from i."""
    (folder / "package.json").parent.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"name": "svg-country-flags", "version": "1.2.10"}))
    for resolution in RESOLUTIONS:
        (folder / f"png{resolution}px").mkdir()
        for i in range(FLAGS):
            flag = Image.new("RGB", (6, 4), (i, 255 - i, (7 * i) % 256))
            flag.paste((255 - i, i, 40), (0, 2, 6, 4))
            flag.save(folder / f"png{resolution}px" / f"f{i:03d}.png")
    return folder


def flag_data(root: Path, data_root: str | None = None, **dataset) -> object:
    settings = [f"data.dataset.{k}={'null' if v is None else v}" for k, v in dataset.items()]
    from tests.conftest import compose_train

    cfg = compose_train(root / "run", ["data=flags", f"data.root={data_root or root / 'data'}", "data.image_size=8",
                                       *settings])
    return instantiate(cfg.data)


def test_a_flag_is_letterboxed_onto_a_grey_square():
    flag = Image.new("RGB", (30, 20), (200, 0, 0))
    square = letterbox(flag)
    assert square.size == (30, 30)
    assert square.getpixel((15, 2)) == PAD and square.getpixel((15, 27)) == PAD
    assert square.getpixel((15, 15)) == (200, 0, 0)


@needs_npm
def test_npm_pack_obtains_checks_and_unpacks_the_flags(tmp_path, monkeypatch):
    package = write_package(tmp_path / "package_src")
    monkeypatch.chdir(tmp_path)  # data.root relative to the working folder, as paths.data_dir is by default
    wrong = refusal(lambda: flag_data(tmp_path, npm_spec=package, sha256="0" * 64).setup("fit"))
    assert "SHA-256" in str(wrong) and not (tmp_path / "data" / "svg-country-flags-1.2.10").exists()
    assert [p.name for p in (tmp_path / "data").iterdir()] == []  # no tarball or half-unpacked folder left
    datamodule = flag_data(tmp_path, "data", npm_spec=package, sha256=None)
    datamodule.setup("fit")
    images = torch.stack([datamodule.train_set[i]["image"] for i in range(3)])
    assert len(datamodule.train_set) == FLAGS and images.shape == (3, 3, 8, 8)
    grey = (torch.tensor(PAD) / 255 - 0.5) / 0.5
    assert torch.allclose(images[0, :, 0, 4], grey, atol=0.02)  # the band above the 3:2 flag
    assert (tmp_path / "data" / "svg-country-flags-1.2.10" / "png1000px").is_dir()


def test_without_npm_the_github_archive_is_used(tmp_path, monkeypatch):
    package = write_package(tmp_path / "country-flags-master")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(package, arcname="country-flags-master")
    server = _Server()
    try:
        url = server.add("/country-flags/master.tar.gz", buffer.getvalue())
        monkeypatch.setattr(flags.shutil, "which", lambda name: None)
        datamodule = flag_data(tmp_path, url=url)
        datamodule.setup("fit")
        assert len(datamodule.train_set) == FLAGS and server.hits["/country-flags/master.tar.gz"] == 1
        flag_data(tmp_path, url=url).setup("fit")  # the second time from the folder
        assert server.hits["/country-flags/master.tar.gz"] == 1
    finally:
        server.close()


def test_bad_flag_settings_are_named(tmp_path):
    assert "renders (100, 250, 1000)" in str(refusal(lambda: flag_data(tmp_path, resolution=64).setup("fit")))
    error = refusal(lambda: flag_data(tmp_path, download=False).setup("fit"))
    assert "npm pack svg-country-flags@1.2.10" in str(error)
