"""gan-eval fake=DIR real=DIR|train|test: FID, KID, IS and precision/recall/density/coverage of any folder of images
against another folder or a dataset's split (`data=...`), in the features of the metrics' network. The real images'
features are cached (gan_cli.metrics.reference_cache) under a key of everything that decides them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from gan_cli.data.sources import images_under, open_rgb
from gan_cli.errors import UserError
from gan_cli.evaluation.config import feature_network
from gan_cli.metrics.record import append_record, new_record
from gan_cli.metrics.reference_cache import ReferenceCache
from gan_cli.metrics.scores import KID_SUBSETS, PRDC_K, DistributionScores, check_scores

RESIZE = "antialiased bilinear, when an image's size differs"
SPLITS = ("train", "test")


class FolderImages(Dataset):
    """Every image under `folder` (any depth), as RGB in [0, 1] at `size` (H, W)."""

    def __init__(self, folder: Path, size: tuple[int, int] | None = None) -> None:
        self.files = images_under(folder) if folder.is_dir() else []
        if not self.files:
            raise UserError(f"{folder} is not a folder of images: give a folder holding PNG or JPEG files (at any "
                            "depth), e.g. the output=DIR/ of gan-sample.")
        self.size = size or open_rgb(self.files[0]).size[::-1]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        image = TF.to_dtype(TF.pil_to_tensor(open_rgb(self.files[index])), torch.float32, scale=True)
        return resized(image, self.size)

    def fingerprint(self) -> str:
        """A hash of the files' names, sizes and modification times: a changed folder is computed anew."""
        digest = hashlib.sha256()
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


class SplitImages(Dataset):
    """A split of a dataset (`data=...`), in [0, 1] at `size`."""

    def __init__(self, datamodule, split: str, size: tuple[int, int]) -> None:
        self.datamodule, self.items, self.size = datamodule, datamodule.build(split), size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Tensor:
        image = self.datamodule.denormalize(self.items[index]["image"][None])[0].clamp(0, 1)
        return resized(image, self.size)


def resized(image: Tensor, size: tuple[int, int]) -> Tensor:
    return image if tuple(image.shape[-2:]) == tuple(size) else TF.resize(image, list(size), antialias=True)


def evaluate_folders(cfg: DictConfig) -> tuple[dict, Path]:
    metrics = cfg.metrics
    scores = check_scores(metrics.scores)
    network = feature_network(metrics).to(cfg.device)
    fake = FolderImages(Path(cfg.fake).expanduser(), (cfg.image_size, cfg.image_size) if cfg.image_size else None)
    real, source = real_images(cfg, fake.size)
    reference = {"feature_network": network.describe(), "source": source, "count": len(real),
                 "image_size": list(fake.size), "resize": RESIZE}
    cache = ReferenceCache(cfg.cache_dir) if cfg.cache_dir else None
    real_features = cache.load(reference) if cache else None
    cached = real_features is not None
    if real_features is None:
        real_features, _ = features_of(real, network, metrics.batch_size, cfg.device)
        if cache:
            cache.save(reference, real_features)
    fake_features, logits = features_of(fake, network, metrics.batch_size, cfg.device)
    distribution = DistributionScores(scores)
    distribution.update(real_features.to(cfg.device), None, real=True)
    distribution.update(fake_features, logits, real=False)
    torch.manual_seed(metrics.seed)  # KID's subsets
    kid_subset = min(metrics.kid_subset_size, len(real), len(fake))
    protocol = {"reference": reference, "reference_cached": cached,
                "generated": {"folder": str(Path(cfg.fake).expanduser().resolve()), "count": len(fake)},
                "kid": {"subset_size": kid_subset, "subsets": KID_SUBSETS}, "scores": scores}
    if "prdc" in scores:
        protocol["prdc"] = {"nearest_k": PRDC_K, "implementation": "prdc (Naeem et al. 2020)"}
    record = new_record(distribution.compute(kid_subset), protocol)
    output = Path(cfg.output).expanduser() if cfg.output else Path(str(Path(cfg.fake).expanduser()).rstrip("/")
                                                                    + ".eval.json")
    append_record(output, record)
    return record, output


def real_images(cfg: DictConfig, size: tuple[int, int]) -> tuple[Dataset, dict]:
    """The images the folder is compared with, and how to name their source in the protocol."""
    if cfg.real is None:
        raise UserError("gan-eval fake=DIR needs real=: a folder of real images, or train / test with data=... "
                        "(e.g. real=test data=mnist_5k).")
    if str(cfg.real) in SPLITS:
        if not cfg.get("data"):
            raise UserError(f"real={cfg.real} names a split of a dataset: choose the dataset with data=... (e.g. "
                            "data=mnist_5k), or give a folder: real=DIR.")
        datamodule = instantiate(cfg.data)
        source = getattr(datamodule.dataset, "func", datamodule.dataset)
        name = f"{getattr(source, '__module__', '')}.{getattr(source, '__qualname__', repr(source))}"
        return SplitImages(datamodule, cfg.real, size), {"dataset": name, "split": cfg.real,
                                                         "image_size": datamodule.spec.image_size}
    folder = FolderImages(Path(cfg.real).expanduser(), size)
    return folder, {"folder": str(Path(cfg.real).expanduser().resolve()), "files_sha256": folder.fingerprint()}


@torch.no_grad()
def features_of(images: Dataset, network, batch_size: int, device: str) -> tuple[Tensor, Tensor | None]:
    features, logits = [], []
    for batch in DataLoader(images, batch_size=batch_size):
        f, l = network(batch.to(device))
        features.append(f.float())
        if l is not None:
            logits.append(l.float())
    return torch.cat(features), (torch.cat(logits) if logits else None)


def report(record: dict, output: Path) -> str:
    protocol = record["protocol"]
    source = protocol["reference"]["source"]
    real = source.get("folder") or f"the {source.get('split')} split of {source.get('dataset')}"
    cached = ", features from the cache" if protocol["reference_cached"] else ""
    lines = [f"{protocol['generated']['folder']} ({protocol['generated']['count']} images) against {real} "
             f"({protocol['reference']['count']} images{cached})"]
    lines += [f"  {name:<24} {value:.6g}" for name, value in record["scores"].items()]
    lines.append(f"Scores and protocol appended to {output}")
    return "\n".join(lines)
