"""gan-eval: the scores of a checkpoint, over one or more seeds, appended to a JSON file next to it.

The metrics settings are, in order: `metrics=...` given on the command line; else the ones the run trained
with (with any `metrics.KEY=...` from the command line applied); else metrics=inception.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_cli.assembly import model_from_checkpoint
from gan_cli.checkpoint import EXPORT_WEIGHTS, HUB, read_checkpoint
from gan_cli.errors import UserError
from gan_cli.evaluation import Evaluator, build_evaluator
from gan_cli.evaluation.evaluator import model_kind
from gan_cli.metrics.record import append_record, new_record, summarize
from gan_cli.metrics.reference_cache import ReferenceCache


def metrics_settings(cfg: DictConfig, run_config: dict) -> DictConfig:
    """The metrics config to use (see the module docstring)."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    chosen = any(o.split("=", 1)[0].lstrip("+~") == "metrics" for o in overrides)
    if not chosen and run_config["data"]["_target_"].endswith("PointsDataModule"):
        metrics = OmegaConf.create({"feature_net": None, "scores": [], "num_samples": 2500})  # modes, not features
    elif chosen or not run_config.get("metrics"):
        metrics = cfg.metrics
    else:
        own = [o.lstrip("+") for o in overrides if o.lstrip("+").startswith("metrics.")]
        metrics = OmegaConf.merge(run_config["metrics"], OmegaConf.from_dotlist([o.removeprefix("metrics.") for o in own]))
    missing = sorted(OmegaConf.missing_keys(metrics))
    if missing:
        raise UserError(f"metrics.{missing[0]} is not set; give it on the command line: metrics.{missing[0]}=...")
    metrics = OmegaConf.create(OmegaConf.to_container(metrics, resolve=True))
    if cfg.num_samples is not None:
        metrics.num_samples = cfg.num_samples
    return metrics


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluate(cfg: DictConfig) -> tuple[dict, Path]:
    """Evaluate cfg.ckpt_path; returns the record and the JSON file it was appended to."""
    if not cfg.seeds:
        raise UserError("seeds=[] names no seed: give at least one, e.g. seeds=[0,1,2].")
    checkpoint = read_checkpoint(cfg.ckpt_path)
    model, run_config = model_from_checkpoint(checkpoint)
    model.to(cfg.device)
    kind = model_kind(model)
    metrics = metrics_settings(cfg, run_config)
    if kind in ("classifier", "own"):  # its own scores: no feature network needed
        settings = {k: metrics[k] for k in ("batch_size", "reference_split", "seed")}
        evaluator = Evaluator(None, **settings)
    else:
        evaluator = build_evaluator(metrics)
        evaluator.reference_cache = ReferenceCache(cfg.cache_dir) if cfg.get("cache_dir") else None
    datamodule = instantiate(run_config["data"])
    per_seed = [evaluator.evaluate(model, datamodule, seed=seed) for seed in cfg.seeds]
    weights, output = evaluated_file(cfg.ckpt_path, checkpoint)
    context = {"checkpoint": {"path": str(cfg.ckpt_path) if str(cfg.ckpt_path).startswith(HUB) else str(weights),
                              "sha256": file_sha256(weights), "model": run_config["model"]["_target_"],
                              "epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step")},
               "seeds": list(cfg.seeds)}
    record = new_record(summarize(per_seed), evaluator.last_protocol, **context)
    output = Path(cfg.output).expanduser() if cfg.output else output
    append_record(output, record)
    return record, output


def evaluated_file(ckpt_path: str, checkpoint: dict) -> tuple[Path, Path]:
    """The file whose hash the record keeps, and where the record goes by default: beside a checkpoint or an
    exported folder; in the working folder for hf:// (not into the Hub's cache)."""
    exported = checkpoint["gan_cli"].get("exported")
    if exported is None:
        ckpt = Path(ckpt_path).expanduser().resolve()
        return ckpt, ckpt.with_name(f"{ckpt.stem}.eval.json")
    folder = Path(exported["folder"])
    name = str(ckpt_path)[len(HUB):].replace("/", "--") if str(ckpt_path).startswith(HUB) else None
    return folder / EXPORT_WEIGHTS, Path(f"{name}.eval.json") if name else folder.with_name(f"{folder.name}.eval.json")


def report(record: dict, output: Path) -> str:
    """The scores as a small table (mean ± standard deviation over seeds)."""
    checkpoint = record["checkpoint"]
    lines = [f"{checkpoint['path']}  ({checkpoint['model'].rsplit('.', 1)[-1]}, epoch {checkpoint['epoch']}, "
             f"step {checkpoint['global_step']}), seeds {record['seeds']}"]
    for name, score in record["scores"].items():
        spread = f" ± {score['std']:.4g}" if score["std"] is not None else ""
        lines.append(f"  {name:<24} {score['mean']:.6g}{spread}")
    lines.append(f"Scores and protocol appended to {output}")
    return "\n".join(lines)
