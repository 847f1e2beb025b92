"""The real images' features, kept between evaluations: computing them (10,000 images through InceptionV3) costs
more than the scores. An entry is keyed by a hash of everything that decides the features (the feature network
and its weights' hash, the images' source and split or their files, how many, their size and channels), so a
change to any of these computes them anew; the protocol is stored beside the features for a reader."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor


def protocol_key(protocol: dict) -> str:
    return hashlib.sha256(json.dumps(protocol, sort_keys=True, default=str).encode()).hexdigest()[:32]


class ReferenceCache:
    """`folder/<key>.pt` files holding {"features": (N, D) float32, "protocol": dict}."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()
        self.hits = 0

    def path(self, protocol: dict) -> Path:
        return self.folder / f"{protocol_key(protocol)}.pt"

    def load(self, protocol: dict) -> Tensor | None:
        path = self.path(protocol)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged entry is computed again
            return None
        if entry.get("protocol") != json.loads(json.dumps(protocol, default=str)):
            return None
        self.hits += 1
        return entry["features"]

    def save(self, protocol: dict, features: Tensor) -> Path:
        """Write atomically: a killed write leaves no entry, never a half one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(protocol)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        entry = {"features": features.detach().float().cpu(), "protocol": json.loads(json.dumps(protocol, default=str))}
        torch.save(entry, tmp)
        os.replace(tmp, path)
        return path
