"""data=flags: the 256 public-domain country and territory flags of the npm package svg-country-flags 1.2.10 (PNG
renders 100, 250 and 1000 px wide; the same files are in the GitHub repository hjnilsson/country-flags).

Obtained once into `root/svg-country-flags-1.2.10`: with `npm pack` where npm exists (the tarball's SHA-256 is
checked against the published one), else from the GitHub archive (checked by its layout: 256 PNGs); either is
verified and unpacked beside the destination and moved there in one step (gan_cli.data.download).

Flags are not square (most are 3:2 or 2:1). Each is letterboxed: centred on a square of mid-grey, the colour flags
use least, so that the whole flag is kept with its aspect, and samples show it the same way (a grey band above and
below). Cropping would cut the canton of the flags that have one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from gan_cli.data.download import download_dataset, install_archive
from gan_cli.data.sources import ImageFolder, open_rgb
from gan_cli.errors import UserError

PACKAGE, VERSION = "svg-country-flags", "1.2.10"
NPM_SHA256 = "2576650b4568c8ee1a2a6ddaa45c0246be16735f229bb40b1a0a6f40424e5213"  # of svg-country-flags-1.2.10.tgz
ARCHIVE_URL = "https://github.com/hjnilsson/country-flags/archive/refs/heads/master.tar.gz"
FLAGS = 256
RESOLUTIONS = (100, 250, 1000)
PAD = (128, 128, 128)


def letterbox(image: Image.Image) -> Image.Image:
    """`image` centred on a square of PAD grey as wide as its longer side."""
    side = max(image.size)
    square = Image.new("RGB", (side, side), PAD)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


class WorldFlags(ImageFolder):
    """The flags at `resolution` px wide, letterboxed to squares; unlabelled. Both splits are all 256 flags (a
    closed set: a model is judged by how much of it its samples cover)."""

    def __init__(self, root: str, split: str = "train", transform=None, resolution: int = 250,
                 npm_spec: str = f"{PACKAGE}@{VERSION}", sha256: str | None = NPM_SHA256, url: str = ARCHIVE_URL,
                 download: bool = True) -> None:
        if resolution not in RESOLUTIONS:
            raise UserError(f"data.dataset.resolution={resolution}: the package has renders {RESOLUTIONS} px wide.")
        root = Path(root).expanduser().absolute()  # npm runs in a folder of its own
        folder = flags_folder(root, npm_spec, sha256, url, download) / f"png{resolution}px"
        super().__init__(str(folder), split, transform)

    def __getitem__(self, index: int):
        image = letterbox(open_rgb(self.files[index]))
        return (self.transform(image) if self.transform else image), -1


def complete(folder: Path) -> bool:
    return all(len(list((folder / f"png{r}px").glob("*.png"))) == FLAGS for r in RESOLUTIONS)


def flags_folder(root: Path, npm_spec: str, sha256: str | None, url: str, download: bool) -> Path:
    name = f"{PACKAGE}-{VERSION}"
    target = root / name
    layout = f"png100px/, png250px/ and png1000px/ with {FLAGS} PNG files each"
    if target.is_dir() and complete(target):
        return target
    manual = (f"By hand: `npm pack {npm_spec}` (or download {url}) where there is a network, and unpack it so that "
              f"{target} holds {layout}.")
    if not download:
        raise UserError(f"The flags are not in {target} and data.dataset.download=false. {manual}")
    if target.exists():
        raise UserError(f"{target} exists but does not hold {layout}. Delete it to obtain the flags again.")
    npm = shutil.which("npm")
    if npm is None:
        return download_dataset(name, url, root, complete, layout)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}.", suffix=".npm") as folder:
        packed = subprocess.run([npm, "pack", npm_spec, "--json", "--pack-destination", folder], capture_output=True,
                                text=True, timeout=600, cwd=folder)
        if packed.returncode != 0:
            said = [line for line in packed.stderr.splitlines() if "error" in line and "complete log" not in line]
            why = " ".join(said[:2]) or packed.stderr.strip()[-300:] or "no message"
            raise UserError(f"`npm pack {npm_spec}` failed ({why}). {manual}")
        tarball = Path(folder) / json.loads(packed.stdout)[0]["filename"]
        return install_archive(tarball, name, root, complete, layout, f"npm pack {npm_spec}", manual, sha256)
