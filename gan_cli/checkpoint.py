"""Checkpoint files: written atomically, read with `weights_only=True` (gan_cli.assembly turns one back into a
model)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from gan_cli.errors import UserError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the same folder, then renames it into place: a run killed while
    saving never leaves a truncated checkpoint, and the previous last.ckpt survives until the new one
    is complete."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """Load a gan-cli checkpoint (weights_only=True), with a clear error for a wrong path or file."""
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        hint = ""
        if path.is_dir() and (path / "checkpoints" / "last.ckpt").is_file():
            hint = f" That is a run folder: use ckpt_path={path / 'checkpoints' / 'last.ckpt'}."
        elif path.is_dir():
            found = sorted(path.glob("**/*.ckpt"))[:3]
            hint = f" It is a folder; checkpoints in it: {', '.join(map(str, found))}." if found else ""
        raise UserError(
            f"No checkpoint at ckpt_path={path}.{hint or ' Check the path: a run keeps its checkpoints in <run folder>/checkpoints/ (last.ckpt and periodic ones).'}"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated, foreign or unsafe file
        raise UserError(
            f"ckpt_path={path} is not a readable gan-cli checkpoint: torch.load(weights_only=True) failed with "
            f"{type(err).__name__} (the file is truncated, not a checkpoint, or holds objects that are not plain "
            "tensors and containers). Point ckpt_path at a .ckpt file written by gan-train."
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "gan_cli" not in checkpoint:
        raise UserError(
            f"ckpt_path={path} is a PyTorch file but not a gan-cli checkpoint (it has no model config). "
            "Point ckpt_path at a .ckpt file written by gan-train."
        )
    return checkpoint
