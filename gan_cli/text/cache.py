"""Caption embeddings computed once and kept on disk.

A cache file is keyed by the encoder's `name` and a hash of the captions (their order included), so a
different encoder or caption set never reads another's embeddings. A file that cannot be read, or whose
contents do not match its key, is recomputed with a warning: a cache never stops a run.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor


def captions_hash(captions: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for caption in captions:
        digest.update(caption.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def cache_path(cache_dir: str | Path, encoder_name: str, captions: Sequence[str]) -> Path:
    """The cache file of these captions under this encoder: <cache_dir>/<encoder name>-<hash>.pt."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_name).strip("_") or "encoder"
    return Path(cache_dir).expanduser() / f"{safe}-{captions_hash(captions)[:20]}.pt"


def _read(path: Path, encoder, captions: Sequence[str]) -> Tensor | None:
    """The cached embeddings, or None (with a warning) when the file does not hold exactly these."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        embeddings = saved["embeddings"]
        problem = (
            "it was written by another encoder" if saved.get("encoder") != encoder.name else
            "it holds other captions" if saved.get("captions_hash") != captions_hash(captions) else
            f"its embeddings are shaped {tuple(embeddings.shape)}, not ({len(captions)}, {encoder.dim})"
            if tuple(embeddings.shape) != (len(captions), encoder.dim) else
            "its embeddings are not finite" if not torch.isfinite(embeddings).all() else None
        )
    except Exception as err:  # truncated, corrupt, not a torch file, not a dict, ...
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    if problem:
        warnings.warn(f"The embedding cache {path} is not usable ({problem}); computing the embeddings again.",
                      stacklevel=3)
        return None
    return embeddings.float()


def _write(path: Path, encoder, captions: Sequence[str], embeddings: Tensor) -> None:
    """Write next to the destination, then rename: an interrupted write leaves no half file behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save({"encoder": encoder.name, "captions_hash": captions_hash(captions),
                        "embeddings": embeddings}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        warnings.warn(f"Could not write the embedding cache {path} ({err}); the embeddings will be computed again "
                      "next run. Point paths.data_dir at a writable folder to keep them.", stacklevel=3)


def cached_embeddings(encoder, captions: Sequence[str], cache_dir: str | Path | None) -> Tensor:
    """`encoder.encode(captions)`, read from `cache_dir` when it holds them, else computed and stored there.
    `cache_dir=None` turns caching off."""
    captions = list(captions)
    if cache_dir is None:
        return encoder.encode(captions).float()
    path = cache_path(cache_dir, encoder.name, captions)
    if path.exists():
        embeddings = _read(path, encoder, captions)
        if embeddings is not None:
            return embeddings
    embeddings = encoder.encode(captions).float().cpu()
    _write(path, encoder, captions, embeddings)
    return embeddings
