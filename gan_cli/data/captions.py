"""Images with captions, for the text-to-image models (model=text_cgan, stackgan).

Batches are dicts: "image" and "label" as for every ImageDataModule, "text" the embedding of one of the
image's captions drawn at random each time the image is served, and "wrong_text" the embedding of a caption
of another image with a different label (the matching-aware discriminator's mismatched pair).

`data=mnist_5k_captions` (DigitCaptionsDataModule) writes its captions from each digit's label and its
measured stroke thickness, slant and size (gan_cli.data.digit_attributes), bucketed into words with
thresholds taken from the training split, in several phrasings per image; each distinct caption is encoded
once with the run's `text_encoder` and cached on disk (gan_cli.text.cache).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from gan_cli.data.datamodule import ImageDataModule, _InMemory, dataset_labels
from gan_cli.data.digit_attributes import measure
from gan_cli.errors import UserError
from gan_cli.text.cache import cached_embeddings


class CaptionedImages(Dataset):
    """Items of `items` with "text" and "wrong_text": image i's captions are rows ids[i] of `table`."""

    def __init__(self, items: Dataset, labels: Tensor, table: Tensor, ids: Tensor) -> None:
        if len(ids) != len(items) or len(labels) != len(items):
            raise ValueError(f"{len(items)} images but {len(ids)} caption lists and {len(labels)} labels")
        self.items, self.labels, self.table, self.ids = items, labels.long(), table, ids.long()
        # Images sorted by label: those with another label than image i are all but one contiguous block.
        self.order = torch.argsort(self.labels, stable=True)
        values, counts = torch.unique(self.labels, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        self.block = {int(v): (int(s), int(c)) for v, s, c in zip(values, starts, counts)}

    def __len__(self) -> int:
        return len(self.items)

    def caption(self, index: int) -> Tensor:
        """The embedding of one of image `index`'s captions, drawn at random."""
        row = self.ids[index]
        return self.table[row[torch.randint(len(row), ()).item()]]

    def mismatched(self, index: int) -> int:
        """A random image with a label different from image `index`'s (any other image if all share one)."""
        start, count = self.block[int(self.labels[index])]
        if count == len(self):
            return (index + 1 + torch.randint(len(self) - 1, ()).item()) % len(self)
        r = torch.randint(len(self) - count, ()).item()
        return int(self.order[r if r < start else r + count])

    def __getitem__(self, index: int) -> dict:
        item = dict(self.items[index])
        item["text"] = self.caption(index)
        item["wrong_text"] = self.caption(self.mismatched(index))
        return item


def split_images(items: Dataset) -> Tensor:
    """All images of a built split, (N, C, H, W), as the models see them (normalised)."""
    if isinstance(items, _InMemory):
        return items.images
    return torch.stack([items[i]["image"] for i in range(len(items))])


def takes_base_arguments(cls: type) -> type:
    """Give a subclass whose __init__ passes **kwargs on to ImageDataModule the full signature, so that the
    config check (gan_cli.config.schemas) still names a mistyped data.* key instead of accepting any."""
    own = [p for name, p in inspect.signature(cls.__init__).parameters.items()
           if name != "self" and p.kind is not p.VAR_KEYWORD]
    names = {p.name for p in own}
    base = [p for name, p in inspect.signature(ImageDataModule.__init__).parameters.items()
            if name != "self" and name not in names]
    cls.__signature__ = inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) for p in own + base])
    return cls


class TextImageDataModule(ImageDataModule):
    """An ImageDataModule whose splits carry caption embeddings. Subclasses say where they come from
    (`caption_table`); `text_encoder` is the run's encoder (conf/text_encoder/), whose `dim` the models use."""

    def __init__(self, text_encoder: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text_encoder = text_encoder

    def caption_table(self, split: str, items: Dataset) -> tuple[Tensor, Tensor]:
        """(table (U, dim), ids (N, K)): the embeddings, and for each of the split's N images the rows of
        its K captions."""
        raise NotImplementedError

    def build(self, split: str) -> Dataset:
        items = super().build(split)
        table, ids = self.caption_table(split, items)
        if table.shape[1] != self.text_encoder.dim:
            raise UserError(f"The caption embeddings are {table.shape[1]}-D but text_encoder.dim="
                            f"{self.text_encoder.dim}: set text_encoder.dim={table.shape[1]}.")
        return CaptionedImages(items, dataset_labels(items), table, ids)


def encoded_captions(encoder: Any, captions: list[list[str]], cache_dir: str | None) -> tuple[Tensor, Tensor]:
    """(table, ids) of TextImageDataModule.caption_table for caption sentences: each distinct caption encoded
    once (through the cache); an image with fewer captions than the most repeats its own."""
    unique = sorted({c for row in captions for c in row})
    index = {c: i for i, c in enumerate(unique)}
    width = max(len(row) for row in captions)
    ids = torch.tensor([[index[row[j % len(row)]] for j in range(width)] for row in captions])
    return cached_embeddings(encoder, unique, cache_dir), ids


# --- captions of the embedded digits ----------------------------------------------------------------
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS_WORDS = ("thin", "medium", "thick")
SLANT_WORDS = ("slanted left", "upright", "slanted right")
SIZE_WORDS = ("small", "large")


def attribute_thresholds(measures: dict[str, Tensor], labels: Tensor, num_classes: int) -> dict[str, Tensor]:
    """Bucket edges from a training split's measures: thickness at its tertiles (thin / medium / thick);
    slant: upright within the third of digits closest to 0, else slanted left or right; size at each
    class's median (a "1" is narrow by nature, so small and large are relative to the digit)."""
    sizes = measures["size"]
    medians = [sizes[labels == c].median() if (labels == c).any() else sizes.median() for c in range(num_classes)]
    return {"thickness": torch.quantile(measures["thickness"], torch.tensor([1 / 3, 2 / 3])),
            "slant": torch.quantile(measures["slant"].abs(), 1 / 3),
            "size": torch.stack(medians)}


def attribute_buckets(measures: dict[str, Tensor], labels: Tensor, thresholds: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each image's word index per attribute: thickness 0-2 (THICKNESS_WORDS), slant 0-2 (SLANT_WORDS),
    size 0-1 (SIZE_WORDS)."""
    slant, t = measures["slant"], thresholds["slant"]
    return {"thickness": torch.bucketize(measures["thickness"], thresholds["thickness"]),
            "slant": torch.where(slant < -t, 0, torch.where(slant > t, 2, 1)),
            "size": (measures["size"] > thresholds["size"][labels]).long()}


def digit_captions(label: int, thickness: int, slant: int, size: int) -> list[str]:
    """Six phrasings of one digit's description; the digit is named as a word in some and as a numeral in
    others, every caption names it."""
    word, num = DIGIT_WORDS[label], str(label)
    thick, sized = THICKNESS_WORDS[thickness], SIZE_WORDS[size]
    slant_adj = ("left-slanted", "upright", "right-slanted")[slant]
    leaning = ("leaning left", "standing upright", "leaning right")[slant]
    return [
        f"a {thick} {slant_adj} {word}",
        f"the digit {num}, written with a {thick} pen and {leaning}",
        f"a {sized} {slant_adj} {num}",
        f"a {sized} {word} drawn with {thick} strokes",
        f"a handwritten {num} with {thick} strokes, {leaning}",
        f"the number {word}, {sized} and {SLANT_WORDS[slant]}",
    ]


@takes_base_arguments
class DigitCaptionsDataModule(TextImageDataModule):
    """data=mnist_5k_captions: the embedded digits with captions from their label and measured attributes.

    The attributes are measured on the images at the data's resolution (data.image_size), so generated
    digits of that size can be measured and bucketed the same way (`thresholds`, `attribute_buckets`).
    """

    def __init__(self, text_encoder: Any, cache_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(text_encoder, **kwargs)
        if not self.spec.num_classes:
            raise UserError("data=mnist_5k_captions names each digit in its captions: keep data.num_classes=10.")
        self.cache_dir = cache_dir
        self._measured: dict[str, tuple[Tensor, dict[str, Tensor]]] = {}
        self._thresholds: dict[str, Tensor] | None = None

    def measured(self, split: str, items: Dataset | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(labels, measures) of the split's images, measured once."""
        if split not in self._measured:
            items = ImageDataModule.build(self, split) if items is None else items
            self._measured[split] = (dataset_labels(items), measure(self.denormalize(split_images(items))))
        return self._measured[split]

    @property
    def thresholds(self) -> dict[str, Tensor]:
        """The bucket edges (attribute_thresholds) of the training split."""
        if self._thresholds is None:
            labels, measures = self.measured("train")
            self._thresholds = attribute_thresholds(measures, labels, self.spec.num_classes)
        return self._thresholds

    def captions(self, split: str, items: Dataset | None = None) -> list[list[str]]:
        """Every image's captions, in the split's order."""
        labels, measures = self.measured(split, items)
        buckets = attribute_buckets(measures, labels, self.thresholds)
        return [digit_captions(int(label), int(t), int(s), int(z))
                for label, t, s, z in zip(labels, buckets["thickness"], buckets["slant"], buckets["size"])]

    def caption_table(self, split: str, items: Dataset) -> tuple[Tensor, Tensor]:
        return encoded_captions(self.text_encoder, self.captions(split, items), self.cache_dir)
