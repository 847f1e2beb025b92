"""data=cub and data=flowers: CUB-200-2011 birds and Oxford-102 flowers in the layout the StackGAN authors
published (github.com/hanzhanggit/StackGAN, "Data"), with their precomputed char-CNN-RNN text embeddings.

    <root>/train/filenames.pickle           image keys, e.g. 002.Laysan_Albatross/Laysan_Albatross_0002_1027
    <root>/train/class_info.pickle          class id (1-based) of each image
    <root>/train/char-CNN-RNN-embeddings.pickle   (images, 10, 1024) embeddings of each image's captions
    <root>/test/...                          the same for the test split (unseen classes)
    birds:   <root>/CUB_200_2011/images/<key>.jpg, CUB_200_2011/images.txt and bounding_boxes.txt; each
             image is cropped around its bird's box as StackGAN does (a square of 1.5x the box's longer side)
    flowers: <root>/<key>.jpg (the keys start with jpg/)
    captions (optional; only for another text_encoder than precomputed): <root>/text_c10/<key>.txt or
             <root>/text/<key>.txt, one caption a line (Reed et al.'s cvpr2016 data, AttnGAN's birds.zip)
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from gan_cli.data.captions import TextImageDataModule, encoded_captions, takes_base_arguments
from gan_cli.data.sources import Transform, open_rgb
from gan_cli.errors import UserError
from gan_cli.text.encoders import PrecomputedEncoder

EMBEDDINGS = {"birds": "https://drive.google.com/open?id=0B3y_msrWZaXLT1BZdVdycDY5TEE",
              "flowers": "https://drive.google.com/open?id=0B3y_msrWZaXLaUc0UXpmcnhaVmM"}
IMAGES = {"birds": "http://www.vision.caltech.edu/visipedia/CUB-200-2011.html (CUB_200_2011.tgz)",
          "flowers": "http://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, which unpacks to jpg/)"}
LAYOUTS = tuple(EMBEDDINGS)


def _where_to_get(layout: str) -> str:
    return (f"Get the StackGAN authors' {layout} embeddings (train/ and test/ folders with the pickles) from "
            f"{EMBEDDINGS[layout]} and the images from {IMAGES[layout]}, and put both in the layout the StackGAN "
            "README describes (github.com/hanzhanggit/StackGAN, Data); or point data.root at that folder.")


def read_pickle(folder: str | Path, name: str, layout: str | None = None) -> Any:
    """One pickle of the layout; they were written by Python 2, hence latin1 for their numpy arrays."""
    path = Path(folder) / name
    if not path.is_file():
        raise UserError(f"{path} does not exist. " + (_where_to_get(layout) if layout else
                        "The StackGAN authors' embedding files go in <data.root>/<split>/ (see the StackGAN README)."))
    try:
        with path.open("rb") as file:
            return pickle.load(file, encoding="latin1")
    except Exception as err:  # truncated or not a pickle
        raise UserError(f"{path} cannot be read ({type(err).__name__}: {err}); download it again.") from err


def _text_keys(keys: Any) -> list[str]:
    return [k.decode() if isinstance(k, bytes) else str(k) for k in keys]


def _cub_boxes(root: Path) -> dict[str, tuple[float, float, float, float]]:
    """Image key -> (x, y, width, height) of its bird, from CUB_200_2011/images.txt and bounding_boxes.txt."""
    folder = root / "CUB_200_2011"

    def rows(name: str) -> dict[str, list[str]]:
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} does not exist (data=cub crops each image around its bird). " + _where_to_get("birds"))
        return {line.split()[0]: line.split()[1:] for line in path.read_text().splitlines() if line.strip()}

    names, boxes = rows("images.txt"), rows("bounding_boxes.txt")
    return {names[i][0].rsplit(".", 1)[0]: tuple(float(v) for v in boxes[i]) for i in names if i in boxes}


def crop_around(image, box: tuple[float, float, float, float]):
    """StackGAN's crop: a square of side 1.5 x the box's longer side centred on the box, cut at the borders."""
    x, y, w, h = box
    r = int(max(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return image.crop((max(0, cx - r), max(0, cy - r), min(image.width, cx + r), min(image.height, cy + r)))


class StackGANImages(Dataset):
    """The images of one split of the layout, labelled by class (class id - 1)."""

    def __init__(self, root: str, split: str = "train", transform: Transform = None, layout: str = "birds") -> None:
        if layout not in LAYOUTS:
            raise UserError(f"data.dataset.layout={layout}: choose one of {', '.join(LAYOUTS)}.")
        if split not in ("train", "test"):
            raise UserError(f"The StackGAN layout has train and test splits, not {split!r}.")
        self.root, self.layout, self.transform = Path(root).expanduser(), layout, transform
        folder = self.root / split
        self.keys = _text_keys(read_pickle(folder, "filenames.pickle", layout))
        classes = read_pickle(folder, "class_info.pickle", layout)
        if len(classes) != len(self.keys):
            raise UserError(f"{folder}/class_info.pickle has {len(classes)} entries for {len(self.keys)} images in "
                            f"{folder}/filenames.pickle; the two files come from different downloads.")
        self.labels = torch.as_tensor([int(c) - 1 for c in classes], dtype=torch.long)
        self.boxes = _cub_boxes(self.root) if layout == "birds" else None

    def image_path(self, key: str) -> Path:
        if self.layout == "birds":
            return self.root / "CUB_200_2011" / "images" / f"{key}.jpg"
        path = self.root / f"{key}.jpg"
        return path if path.is_file() or key.startswith("jpg/") else self.root / "jpg" / f"{key}.jpg"

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int):
        key = self.keys[index]
        path = self.image_path(key)
        if not path.is_file():
            raise UserError(f"The image {path} (listed in filenames.pickle) does not exist. " + _where_to_get(self.layout))
        image = open_rgb(path)
        if self.boxes is not None:
            if key not in self.boxes:
                raise UserError(f"{self.root}/CUB_200_2011/bounding_boxes.txt has no box for {key}.")
            image = crop_around(image, self.boxes[key])
        return (self.transform(image) if self.transform else image), int(self.labels[index])


def precomputed_embeddings(folder: Path, encoder: PrecomputedEncoder) -> Tensor:
    """The published embeddings of one split folder (`encoder.file`), (N images, K captions, dim)."""
    embeddings = torch.as_tensor(read_pickle(folder, encoder.file), dtype=torch.float32)
    if embeddings.dim() == 2:  # one embedding per image
        embeddings = embeddings[:, None]
    if embeddings.dim() != 3 or embeddings.shape[2] != encoder.dim:
        raise UserError(f"{folder}/{encoder.file} holds embeddings shaped {tuple(embeddings.shape)}; expected "
                        f"(images, captions, {encoder.dim}). Set text_encoder.dim={embeddings.shape[-1]} if the "
                        "file is right.")
    return embeddings


@takes_base_arguments
class StackGANDataModule(TextImageDataModule):
    """Batches of the StackGAN layout in the caption contract ("text": one of the image's ~10 embeddings, at
    random). With text_encoder=precomputed the published char-CNN-RNN embeddings are used; any other encoder
    encodes the caption text files (text_c10/ or text/) once and caches the embeddings under `cache_dir`."""

    def __init__(self, text_encoder: Any, root: str, cache_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(text_encoder, root=root, **kwargs)
        self.root, self.cache_dir = Path(root).expanduser(), cache_dir

    def captions(self, split: str) -> list[list[str]]:
        """Each image's caption sentences, from <root>/text_c10/<key>.txt (or text/<key>.txt)."""
        keys = _text_keys(read_pickle(self.root / split, "filenames.pickle"))
        folder = next((self.root / name for name in ("text_c10", "text") if (self.root / name).is_dir()), None)
        if folder is None:
            raise UserError(
                f"This data reads the StackGAN authors' precomputed embeddings: add text_encoder=precomputed. To encode "
                f"the captions with this text encoder ({self.text_encoder.name}) instead, put their texts in "
                f"{self.root}/text_c10/<key>.txt (one caption a line; Reed et al.'s data, github.com/reedscot/cvpr2016).")
        captions = []
        for key in keys:
            path = folder / f"{key}.txt"
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines()] if path.is_file() else []
            if not any(lines):
                raise UserError(f"{path} does not exist or holds no caption (one caption a line).")
            captions.append([line for line in lines if line])
        return captions

    def caption_table(self, split: str, items: Dataset) -> tuple[Tensor, Tensor]:
        if isinstance(self.text_encoder, PrecomputedEncoder):  # the published embeddings
            embeddings = precomputed_embeddings(self.root / split, self.text_encoder)
            if len(embeddings) != len(items):
                raise UserError(f"{self.root / split} has embeddings for {len(embeddings)} images but "
                                f"{len(items)} in filenames.pickle; the files come from different downloads.")
            n, k, dim = embeddings.shape
            return embeddings.reshape(n * k, dim), torch.arange(n * k).view(n, k)
        return encoded_captions(self.text_encoder, self.captions(split), self.cache_dir)
