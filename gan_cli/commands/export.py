"""gan-export: a checkpoint as a Hugging Face style folder to share: the inference networks' weights as
safetensors (a GAN's discriminators are left out), the run's config as JSON, a sample grid and a model card
(README.md with YAML metadata: model, data, the latest evaluation record with its protocol, how to use it).
gan-sample, gan-translate and gan-eval take the folder as ckpt_path=DIR, and as ckpt_path=hf://owner/name once it
is on the Hub (`hf upload owner/name DIR`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from hydra.utils import get_class
from omegaconf import DictConfig
from safetensors.torch import save_file
from torchvision.utils import save_image

from gan_cli import __version__
from gan_cli.assembly import model_from_checkpoint
from gan_cli.checkpoint import EXPORT_CONFIG, EXPORT_WEIGHTS, read_checkpoint
from gan_cli.errors import UserError
from gan_cli.models.adversarial import AdversarialModule
from gan_cli.models.contract import Sampler, Translator
from gan_cli.visuals import to_grid

GRID = "samples.png"


def export(cfg: DictConfig) -> Path:
    checkpoint = read_checkpoint(cfg.ckpt_path)
    if checkpoint["gan_cli"].get("exported"):
        raise UserError(f"ckpt_path={cfg.ckpt_path} is an exported folder already: export the checkpoint it came from.")
    model, config = model_from_checkpoint(checkpoint)
    output = Path(cfg.output).expanduser()
    if output.exists() and any(output.iterdir()) and not (output / EXPORT_CONFIG).is_file():
        raise UserError(f"output={output} is a folder with other files in it: give a new or empty folder.")
    output.mkdir(parents=True, exist_ok=True)
    dropped = discriminator_prefixes(model)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
               if not name.startswith(tuple(dropped))}
    save_file(weights, output / EXPORT_WEIGHTS, metadata={"format": "pt", "library": "gan-cli"})
    meta = {"gan_cli_version": __version__, "config": config, "dropped": dropped, "epoch": checkpoint.get("epoch"),
            "global_step": checkpoint.get("global_step"), "source": str(Path(cfg.ckpt_path).expanduser().resolve())}
    (output / EXPORT_CONFIG).write_text(json.dumps(meta, indent=1, default=str))
    grid = write_grid(model, config, output, cfg)
    record = latest_evaluation(Path(cfg.ckpt_path).expanduser())
    (output / "README.md").write_text(model_card(config, meta, record, grid, cfg.get("repo_id")))
    return output


def discriminator_prefixes(model) -> list[str]:
    """State-dict prefixes of the networks inference does not use: an adversarial model's discriminators."""
    if not isinstance(model, AdversarialModule):
        return []
    critics = {id(d) for d in model.discriminators()}
    return [f"{name}." for name, module in model.named_modules() if id(module) in critics]


def write_grid(model, config: dict, output: Path, cfg: DictConfig) -> str | None:
    """A grid of samples for the card (a row per label for a conditional model); none for other models."""
    if not isinstance(model, Sampler):
        return None
    pl.seed_everything(cfg.seed, verbose=False)
    labels = None
    if model.num_classes:
        per_row = max(1, cfg.num_samples // model.num_classes)
        labels = torch.arange(model.num_classes).repeat_interleave(per_row)
    images = model.sample(len(labels) if labels is not None else cfg.num_samples, labels)
    nrow = len(labels) // model.num_classes if labels is not None else 8
    save_image(to_grid(images, nrow, config["data"]["mean"], config["data"]["std"]), output / GRID)
    return GRID


def latest_evaluation(ckpt: Path) -> dict | None:
    """The newest record of gan-eval (<checkpoint>.eval.json) or of metrics= during training (metrics.json)."""
    for path in (ckpt.with_name(f"{ckpt.stem}.eval.json"), ckpt.parent / "metrics.json"):
        if path.is_file():
            records = json.loads(path.read_text())
            if records:
                return records[-1]
    return None


def model_card(config: dict, meta: dict, record: dict | None, grid: str | None, repo_id: str | None) -> str:
    model_name = config["model"]["_target_"].rsplit(".", 1)[-1]
    data = config["data"].get("dataset", {}).get("_target_", config["data"]["_target_"]).rsplit(".", 1)[-1]
    translator = issubclass(get_class(config["model"]["_target_"]), Translator)
    header = {"library_name": "gan-cli", "tags": ["gan-cli", model_name.lower(), "pytorch", "safetensors"],
              "pipeline_tag": "image-to-image" if translator else "unconditional-image-generation",
              "gan_cli": {"model": config["model"]["_target_"], "data": data, "epoch": meta["epoch"],
                          "global_step": meta["global_step"], "version": meta["gan_cli_version"]}}
    if record is not None:
        header["gan_cli"]["evaluation"] = {"scores": record["scores"], "protocol": record.get("protocol", {})}
    where = f"hf://{repo_id}" if repo_id else "DIR"
    use = (f"gan-translate ckpt_path={where} input=photos/ output=translated/ direction=AtoB" if translator
           else f"gan-sample ckpt_path={where} num_samples=64 output=grid.png")
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "",
             f"# {model_name} trained with gan-cli on {data}", "",
             f"A `{config['model']['_target_']}` model, epoch {meta['epoch']} (step {meta['global_step']}), exported "
             f"with gan-export: its inference weights in `{EXPORT_WEIGHTS}`, the run's whole config in "
             f"`{EXPORT_CONFIG}`.", ""]
    if grid:
        lines += [f"![samples]({grid})", ""]
    lines += ["## Use it", "", "```bash", "pip install gan-cli", use, f"gan-eval ckpt_path={where}", "```", ""]
    if record is not None:
        lines += ["## Evaluation", "", "| score | value |", "|---|---|"]
        lines += [f"| {name} | {value['mean'] if isinstance(value, dict) else value:.6g} |"
                  for name, value in record["scores"].items()]
        lines += ["", "The protocol (feature network and its weights' hash, reference, counts) is in the metadata "
                  "above.", ""]
    return "\n".join(lines)
