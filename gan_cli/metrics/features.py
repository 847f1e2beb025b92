"""Feature networks: what the Fréchet and kernel distances (and the classifier scores) look through.

A feature network takes images in [0, 1], shape (N, C, H, W) at the data's size and channels, and
returns `(features, logits)`: features (N, D) for FID and KID, and class logits (N, K) for the
Inception Score or a label accuracy (None if it does not classify). Each one also describes itself
for the protocol record (`describe()`), including a hash of its weights.

- `InceptionV3`: the InceptionV3 of the original TensorFlow FID, as ported by torch-fidelity and used by
  torchmetrics; its weights come from `weights_path`, torch's cache, or one download into the cache.
- `ClassifierFeatures`: a classifier trained by `gan-train model=classifier` (penultimate layer).
- `CustomFeatures`: any torch module named by a `_target_`.
"""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor, nn

from gan_cli.checkpoint import read_checkpoint
from gan_cli.errors import UserError

#: torch-fidelity's port of the TF FID InceptionV3 (the weights torchmetrics downloads by default)
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
RESIZE_METHODS = {
    "tf1": "bilinear to 299x299 as TensorFlow 1 does it (torch-fidelity), as in the original FID",
    "antialias": "antialiased bilinear to 299x299 (torch.nn.functional.interpolate, torchmetrics' default)",
}


class FeatureNetwork(nn.Module):
    """Base of the feature networks: always in eval mode, never trained."""

    feature_dim: int
    num_classes: int = 0  # size of the logits; 0: no logits

    def train(self, mode: bool = True) -> "FeatureNetwork":
        return super().train(False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def describe(self) -> dict:
        """How the features are computed, for the protocol record."""
        raise NotImplementedError


def weights_sha256(module: nn.Module) -> str:
    """A hash of a network's weights (every tensor of its state_dict, in order, with its name)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def to_channels(images: Tensor, channels: int) -> Tensor:
    """Grayscale <-> RGB: a grey image is repeated over three channels; RGB is averaged to grey."""
    if images.size(1) == channels:
        return images
    if channels == 3 and images.size(1) == 1:
        return images.expand(-1, 3, -1, -1)
    if channels == 1:
        return images.mean(dim=1, keepdim=True)
    raise UserError(f"Images with {images.size(1)} channels cannot be fed to a feature network that takes {channels}.")


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] floats to bytes exactly as a saved PNG holds them (torchvision's save_image rounding)."""
    return images.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


# --- InceptionV3 -----------------------------------------------------------------------------------
def inception_weights(weights_path: str | None = None, url: str = INCEPTION_URL) -> Path:
    """The InceptionV3 weights file: `weights_path` if given, else torch's cache, else downloaded into it."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise UserError(f"metrics.weights_path={path} is not a file. Point it at the InceptionV3 weights "
                            f"({Path(url).name}, from {url}).")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    hash_prefix = Path(url).stem.rsplit("-", 1)[-1]
    try:  # written to a temporary file and moved into place: an interrupted download leaves nothing
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=hash_prefix, progress=True)
    except (urllib.error.URLError, OSError, RuntimeError) as err:  # RuntimeError: a wrong hash
        raise UserError(
            f"The InceptionV3 weights that FID, KID and IS need are not on this machine and could not be "
            f"downloaded from {url} ({err}). On a machine with a network, download that file and either put it "
            f"at {cached} or pass metrics.weights_path=/path/to/{Path(url).name}. Without Inception, "
            "metrics=digits measures digits with the offline classifier (gan-train model=classifier)."
        ) from err
    return cached


class InceptionV3(FeatureNetwork):
    """The FID InceptionV3 (torchmetrics' NoTrainInceptionV3 over torch-fidelity): 2048 pool features and
    the 1008 unbiased logits of the Inception Score, in one pass. Grey images are repeated over three
    channels; images are quantised to bytes as in a PNG and resized to 299 px by `resize`."""

    feature_dim, num_classes = 2048, 1008

    def __init__(self, weights_path: str | None = None, resize: str = "tf1") -> None:
        super().__init__()
        if resize not in RESIZE_METHODS:
            raise UserError(f"metrics.feature_net.resize={resize}: choose one of {', '.join(RESIZE_METHODS)}.")
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        if not _TORCH_FIDELITY_AVAILABLE:
            raise UserError("The Inception metrics need the package torch-fidelity: pip install torch-fidelity.")
        self.weights_file = inception_weights(weights_path)
        self.resize = resize
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(self.weights_file),
                                      antialias=resize == "antialias")

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        # torchmetrics' forward returns only the first feature; this one call gives both
        features, logits = self.net._torch_fidelity_forward(to_uint8(to_channels(images, 3)))
        return features.reshape(len(images), -1), logits

    def describe(self) -> dict:
        return {"name": "InceptionV3 (TF FID weights via torch-fidelity)", "layer": "pool3 (2048)",
                "weights": str(self.weights_file), "weights_sha256": weights_sha256(self.net),
                "input": "uint8 RGB as in a PNG (grey repeated over 3 channels)",
                "resize": RESIZE_METHODS[self.resize]}


# --- the project's own classifier ------------------------------------------------------------------
class ClassifierFeatures(FeatureNetwork):
    """A classifier checkpoint written by `gan-train model=classifier`: features from its penultimate
    layer, logits from its output. Images are normalised as its training data was, and resized to its
    training size if they differ."""

    def __init__(self, ckpt_path: str | None) -> None:  # None: not given, said below
        super().__init__()
        if not ckpt_path:
            raise UserError(
                "metrics.classifier_ckpt is not set: metrics=digits needs a classifier checkpoint. Train one "
                "offline with `gan-train model=classifier data=mnist_5k` and pass "
                "metrics.classifier_ckpt=<that run>/checkpoints/last.ckpt."
            )
        checkpoint = read_checkpoint(ckpt_path)
        config = checkpoint["gan_cli"]["config"]
        target = str(config["model"]["_target_"])
        if not target.endswith(".Classifier"):
            raise UserError(f"metrics.feature_net.ckpt_path={ckpt_path} holds a {target.rsplit('.', 1)[-1]}, not a "
                            "classifier: train one with `gan-train model=classifier data=...`.")
        # only the classifier's network (its LightningModule adds nothing to features and logits), under the
        # name `network` as in the checkpoint
        network = instantiate(config["model"]["network"])
        self.ckpt_path, self.classifier = str(Path(ckpt_path).expanduser().resolve()), nn.ModuleDict({"network": network})
        self.classifier.load_state_dict({k: v for k, v in checkpoint["state_dict"].items() if k.startswith("network.")})
        self.classifier.eval()
        self.feature_dim, self.num_classes = network.feature_dim, network.num_classes
        self.size, self.channels = network.image_size, network.channels
        data = config["data"]
        self.register_buffer("mean", torch.tensor(data["mean"], dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data["std"], dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.trained_on = data.get("dataset", {}).get("_target_", data.get("_target_"))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        x = to_channels(images, self.channels)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        network = self.classifier["network"]
        return network.features(x), network(x)

    def describe(self) -> dict:
        return {"name": "gan-cli classifier", "checkpoint": self.ckpt_path, "trained_on": self.trained_on,
                "layer": f"penultimate ({self.feature_dim})", "weights_sha256": weights_sha256(self.classifier),
                "input": f"normalised as its training data, {self.channels} channel(s)",
                "resize": f"antialiased bilinear to {self.size}x{self.size} when the size differs"}


# --- any network ---------------------------------------------------------------------------------
class CustomFeatures(FeatureNetwork):
    """Any torch module (a `_target_` in the config) as a feature network: its output, flattened, is the
    feature vector. `image_size` resizes the input, `channels` converts grey/RGB, `mean`/`std`
    normalise it; `classifies: true` also uses the output as logits (for a label accuracy)."""

    def __init__(self, network: nn.Module, image_size: int | None = None, channels: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 classifies: bool = False) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise UserError(f"metrics.feature_net.network must build a torch.nn.Module, not {type(network).__name__}.")
        self.network = network.eval().requires_grad_(False)
        self.size, self.channels, self.classifies = image_size, channels, classifies
        self.mean = None if mean is None else torch.tensor(list(mean)).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(list(std)).view(1, -1, 1, 1)
        self.feature_dim = -1  # known after the first batch
        self.num_classes = -1 if classifies else 0

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        x = to_channels(images, self.channels) if self.channels else images
        if self.size and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        if self.mean is not None:
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        out = self.network(x).flatten(1)
        self.feature_dim = out.size(1)
        return out, out if self.classifies else None

    def describe(self) -> dict:
        target = type(self.network)
        return {"name": f"{target.__module__}.{target.__qualname__}", "layer": "output",
                "weights_sha256": weights_sha256(self.network),
                "input": f"[0, 1]{'' if self.mean is None else ' normalised with mean/std'}",
                "resize": f"antialiased bilinear to {self.size}x{self.size}" if self.size else "none"}


def as_feature_network(obj: nn.Module) -> FeatureNetwork:
    """A FeatureNetwork as is; any other module wrapped as CustomFeatures."""
    return obj if isinstance(obj, FeatureNetwork) else CustomFeatures(obj)
