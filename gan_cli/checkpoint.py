"""Checkpoint files: written atomically, read with `weights_only=True` (gan_cli.assembly turns one back into a
model)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from gan_cli.errors import UserError

#: the temporary files AtomicCheckpointIO writes a checkpoint into: .<name>.<random>.tmp
TEMPORARY = ".*.ckpt.*.tmp"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the same folder, then renames it into place: a run killed while
    saving never leaves a truncated checkpoint, and the previous last.ckpt survives until the new one
    is complete. The file gets the usual permissions (those the umask leaves, as open() would give)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as err:
            raise cannot_write(path, err) from err
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes files readable by their owner alone
            os.replace(tmp, path)
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise cannot_write(path, err) from err
            raise


def cannot_write(path: Path, err: OSError) -> UserError:
    """The error for a checkpoint that cannot be written (a full disk, a read-only folder), with what is left."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free on its disk"
    except OSError:
        free = "its disk could not be asked for its free space"
    kept = (f"The previous checkpoint there, {path}, is intact: resume from it (ckpt_path={path}) once the checkpoint "
            "can be written." if path.is_file() else "There is no earlier checkpoint of this run.")
    return UserError(f"The checkpoint {path} could not be written ({err.strerror or err}; {free}). Free some space or "
                     f"make the folder writable, or run somewhere else (paths.log_dir=DIR). {kept}")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_orphans(folder: Path) -> list[Path]:
    """Delete the temporary files that a run killed while writing a checkpoint left in `folder`; return them."""
    orphans = sorted(folder.glob(TEMPORARY)) if folder.is_dir() else []
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans


def floating_tensors(tree: Any, name: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every floating-point tensor in nested dicts, lists and tuples, named by its path."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() or tree.is_complex():
            yield name, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from floating_tensors(value, f"{name}.{key}" if name else str(key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from floating_tensors(value, f"{name}[{index}]")


def first_non_finite(tree: Any) -> str | None:
    """The name of the first floating-point tensor in `tree` that holds a NaN or an infinity, else None. The
    tensors are checked where they are (one device sync per device, not one per tensor)."""
    named = list(floating_tensors(tree))
    by_device: dict[torch.device, list[int]] = {}
    for position, (_, tensor) in enumerate(named):
        by_device.setdefault(tensor.device, []).append(position)
    bad = []
    for positions in by_device.values():
        finite = torch.stack([torch.isfinite(named[p][1]).all() for p in positions]).cpu()
        bad += [p for p, ok in zip(positions, finite.tolist()) if not ok]
    return named[min(bad)][0] if bad else None


#: an exported model's folder (gan-export): the inference networks' weights and the run's config
EXPORT_WEIGHTS, EXPORT_CONFIG = "model.safetensors", "config.json"
HUB = "hf://"


def read_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """Load a gan-cli checkpoint (weights_only=True), an exported folder (gan-export) or `hf://owner/name[@revision]`
    (a folder on the Hugging Face Hub), with a clear error for a wrong path or file."""
    if str(ckpt_path).startswith(HUB):
        return read_export(hub_snapshot(str(ckpt_path)[len(HUB):]))
    path = Path(ckpt_path).expanduser()
    if path.is_dir() and (path / EXPORT_CONFIG).is_file():
        return read_export(path)
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
    bad = first_non_finite({key: checkpoint.get(key) for key in ("state_dict", "optimizer_states")})
    if bad is not None:
        raise UserError(
            f"ckpt_path={path} holds NaN or infinite values ({bad}): it was written by a run that had diverged, "
            "and nothing sampled, translated, evaluated or resumed from it would be right. Use an earlier "
            "checkpoint of that run."
        )
    return checkpoint


def read_export(folder: Path) -> dict:
    """A folder written by gan-export, as a checkpoint: its weights (the inference networks), config and counters;
    `gan_cli.exported.dropped` lists the networks left out (a GAN's discriminators)."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / EXPORT_CONFIG).read_text())
        state_dict = load_file(folder / EXPORT_WEIGHTS)
    except (OSError, ValueError, SafetensorError) as err:
        raise UserError(f"{folder} is not a complete gan-export folder ({err}): it needs {EXPORT_CONFIG} and "
                        f"{EXPORT_WEIGHTS}. Export it again with gan-export ckpt_path=... output={folder}.") from err
    bad = first_non_finite({"state_dict": state_dict})
    if bad is not None:
        raise UserError(f"{folder} holds NaN or infinite weights ({bad}): export an earlier checkpoint.")
    return {"state_dict": state_dict, "epoch": meta.get("epoch"), "global_step": meta.get("global_step"),
            "gan_cli": {"config": meta["config"], "version": meta.get("gan_cli_version"),
                        "exported": {"dropped": meta.get("dropped", []), "folder": str(folder.resolve())}}}


def hub_snapshot(spec: str) -> Path:
    """The local folder of `owner/name[@revision]` on the Hugging Face Hub: from the local cache, or downloaded."""
    from huggingface_hub import constants, snapshot_download

    repo, _, revision = spec.partition("@")
    if repo.count("/") != 1:
        raise UserError(f"ckpt_path=hf://{spec}: name a Hub repository as hf://owner/name "
                        "(or hf://owner/name@revision).")
    try:
        return Path(snapshot_download(repo, revision=revision or None))
    except Exception as err:
        raise UserError(
            f"ckpt_path=hf://{spec} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and could not "
            f"be downloaded ({type(err).__name__}). Where there is a network, download it with `hf download {repo}` "
            f"(or `huggingface-cli download {repo}`) into that cache, or copy the exported folder here and give "
            "ckpt_path=DIR.") from err

