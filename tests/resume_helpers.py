"""Kill a run in-process at a chosen step, resume it from its last checkpoint, and compare every tensor and
counter of the final checkpoint with an uninterrupted run's (tests/test_resume_matrix.py)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from gan_cli.commands.train import train
from tests.conftest import compose_train

#: the checkpoint's parts that hold the run's state (its config and ModelCheckpoint's notes name run folders)
STATE = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "epoch", "global_step")


class Killed(Exception):
    """What Kill raises: the run dies after batch `at` (its last checkpoint is what survives)."""


class Kill(pl.Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.batches_seen == self.at:
            raise Killed(f"killed after batch {self.at}")


def leaves(tree: Any, name: str = "") -> dict[str, Any]:
    """{path: value} of every leaf of a checkpoint's nested dicts and lists."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= leaves(value, f"{name}.{key}")
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for index, value in enumerate(tree):
            out |= leaves(value, f"{name}[{index}]")
        return out
    return {name: tree}


def final_state(run: Path) -> dict[str, Any]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    state = {key: checkpoint[key] for key in STATE if key in checkpoint}
    state["gan_cli"] = {k: v for k, v in checkpoint["gan_cli"].items() if k != "config"}
    state["callbacks"] = {k: v for k, v in checkpoint.get("callbacks", {}).items() if "Checkpoint" not in k}
    state["datamodule"] = {k: v for k, v in checkpoint.items() if k.endswith("DataModule")}
    return leaves(state)


def differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    names = sorted(expected.keys() | got.keys())
    return [name for name in names if name not in expected or name not in got or not (
        torch.equal(expected[name], got[name]) if isinstance(expected[name], torch.Tensor) else expected[name] == got[name])]


def kill_and_resume(root: Path, overrides: list[str], batches: int, seed: int) -> tuple[int, list[str], int]:
    """Train straight; train again, killed after a random batch (seeded) past the first checkpoint; resume from
    its last.ckpt; return (the batch it was killed after, the differing leaves, how many leaves were compared)."""
    train(compose_train(root / "straight", overrides))
    at = random.Random(seed).randint(4, batches - 1)  # past the first checkpoint of every cell (3 batches an epoch)
    cfg = compose_train(root / "killed", overrides)
    from gan_cli.commands.train import build

    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(Kill(at))
    try:
        trainer.fit(model, datamodule=datamodule, weights_only=True)
    except Killed:
        pass
    last = root / "killed" / "checkpoints" / "last.ckpt"
    assert last.exists(), f"no checkpoint before the kill after batch {at}"
    train(compose_train(root / "resumed", [*overrides, f"ckpt_path={last}"]))
    expected, got = final_state(root / "straight"), final_state(root / "resumed")
    return at, differences(expected, got), len(expected)
