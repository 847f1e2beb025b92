"""Saves the random number generators' states in checkpoints, so a resumed run draws the same noise,
shuffles the same way and ends with the same weights as an uninterrupted one; in a DDP run, every rank's."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from gan_cli.rank_local import every_rank, this_ranks


class RNGState(pl.Callback):
    """Python, NumPy, torch CPU and CUDA generator states, as plain tensors and lists (weights_only-safe)."""

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": every_rank(_generators())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _set_generators(this_ranks(state_dict["ranks"]) if "ranks" in state_dict else state_dict)


def _generators() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_generators(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value
