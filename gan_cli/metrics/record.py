"""The JSON record of an evaluation: every score with how it was computed, so numbers can be compared
(and reproduced) later. Records are appended to the file; earlier ones are never lost."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

PACKAGES = ("gan-cli", "torch", "torchvision", "torchmetrics", "torch-fidelity", "pytorch-lightning", "numpy",
            "scipy")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["cuda"] = torch.version.cuda
    return versions


def summarize(per_seed: list[dict[str, float]]) -> dict[str, dict]:
    """{score: {"mean", "std", "values"}} over seeds; std is the sample standard deviation (null for one seed)."""
    names = list(dict.fromkeys(name for result in per_seed for name in result))
    summary = {}
    for name in names:
        values = [result[name] for result in per_seed if name in result]
        summary[name] = {"mean": statistics.fmean(values),
                         "std": statistics.stdev(values) if len(values) > 1 else None, "values": values}
    return summary


def new_record(scores: dict, protocol: dict, **context) -> dict:
    return {"created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), **context,
            "scores": scores, "protocol": {**protocol, "versions": library_versions()}}


def append_record(path: Path, record: dict) -> None:
    """Add `record` to the JSON list in `path`, written atomically (a killed write leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = []
    if path.is_file():
        try:
            records = json.loads(path.read_text())
        except json.JSONDecodeError:
            path.replace(path.with_suffix(path.suffix + ".unreadable"))  # kept, not overwritten
        if not isinstance(records, list):
            records = [records]
    records.append(record)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(records, f, indent=2, allow_nan=True)
        f.write("\n")
    os.replace(tmp, path)
