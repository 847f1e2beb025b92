"""gan-translate: one generator of a pix2pix, CycleGAN or UNIT checkpoint over a folder of images.

Only the generator for the requested direction is built and loaded (UNIT: its encoders and decoders; with
tricks, the whole model, whose tricks may change or replace the generator). Images
keep their own size (they are padded to what the network needs and cropped back) and their file names.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from hydra.utils import get_class
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.datasets.folder import IMG_EXTENSIONS

from gan_cli.assembly import model_from_checkpoint
from gan_cli.checkpoint import read_checkpoint
from gan_cli.data.datamodule import denormalize
from gan_cli.errors import UserError
from gan_cli.models.contract import Translator
from gan_cli.models.translation.base import INFERENCE_MODES, translate_images

DIRECTIONS = ("AtoB", "BtoA")


def load_generator(checkpoint: dict, direction: str) -> tuple[nn.Module, str]:
    """The generator that translates `direction` (in the data's own naming of A and B), and its name."""
    config = checkpoint["gan_cli"]["config"]
    target = config["model"]["_target_"]
    model_class = get_class(target)
    if not issubclass(model_class, Translator):
        raise UserError(f"gan-translate needs an image-to-image model (model=pix2pix, cyclegan or unit); this "
                        f"checkpoint holds {target}. Use gan-sample for it.")
    if direction not in DIRECTIONS:
        raise UserError(f"direction={direction}: choose AtoB or BtoA.")
    trained = config["data"].get("direction", "AtoB")
    swap = {"AtoB": "BtoA", "BtoA": "AtoB"}
    model_direction = direction if trained == "AtoB" else swap[direction]  # the model always maps its A to its B
    if model_direction not in model_class.GENERATORS:
        can = [d if trained == "AtoB" else swap[d] for d in model_class.GENERATORS]
        raise UserError(f"This {model_class.__name__} checkpoint translates {' and '.join(can)} only (it was trained "
                        f"with data.direction={trained}); use direction={can[0]}.")
    name = model_class.GENERATORS[model_direction]
    if config.get("tricks"):  # tricks may change the generator (virtual batch norm) or replace it (ema's average)
        model, _ = model_from_checkpoint(checkpoint)
        return model.translator(model_direction), name
    return model_class.translator_from(config["model"], checkpoint["state_dict"], model_direction), name


def image_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UserError(f"input={folder} does not exist. Point input= at a folder of images (or one image file).")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise UserError(f"input={folder} holds no image files ({', '.join(IMG_EXTENSIONS)}).")
    return files


def translate(cfg: DictConfig) -> tuple[list[Path], Path]:
    """Translate every image under cfg.input into cfg.output; returns the files written and the output folder."""
    source, output = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    files = image_files(source)
    if source.resolve() == output.resolve() or (source.is_file() and source.parent.resolve() == output.resolve()):
        raise UserError("output= is the input folder: the translations would overwrite the originals. "
                        "Choose another output folder.")
    checkpoint = read_checkpoint(cfg.ckpt_path)
    generator, name = load_generator(checkpoint, cfg.direction)
    generator.to(cfg.device)
    model_cfg, data_cfg = checkpoint["gan_cli"]["config"]["model"], checkpoint["gan_cli"]["config"]["data"]
    mode = cfg.inference or model_cfg.get("inference", "eval")
    if mode not in INFERENCE_MODES:
        raise UserError(f"inference={mode}: choose one of {', '.join(INFERENCE_MODES)}.")
    mean, std, channels = data_cfg["mean"], data_cfg["std"], data_cfg["channels"]
    root = source if source.is_dir() else source.parent
    written, unreadable = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                image = img.convert("L" if channels == 1 else "RGB")
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable.append(path)
            continue
        x = TF.normalize(TF.to_dtype(TF.to_image(image), torch.float32, scale=True), mean, std)
        y = translate_images(generator, x.unsqueeze(0).to(cfg.device), mode)
        target = output / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        TF.to_pil_image(denormalize(y.cpu(), mean, std)[0]).save(target, **({"quality": 95} if target.suffix.lower()
                                                                           in (".jpg", ".jpeg") else {}))
        written.append(target)
    print(f"Translated {len(written)} images {cfg.direction} with {name} into {output}")
    if unreadable:
        raise UserError(f"{len(unreadable)} input files could not be read as images and were skipped: "
                        f"{', '.join(map(str, unreadable[:5]))}. The other translations are in {output}.")
    return written, output
