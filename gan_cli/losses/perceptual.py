"""The perceptual term: keep two images' embeddings in a fixed pretrained network close.

    loss(x, y) = weight * mean over the chosen layers l of mean((f_l(x) - f_l(y))^2)

This is the constraint of the lecture's "direct transformation" (one generator X -> Y kept close to its input
in a feature space; Taigman et al. 2017's f-constancy, Johnson et al. 2016's feature reconstruction loss), and
an optional extra term for CycleGAN and UNIT.

The feature network is frozen: eval mode, no gradients for its weights, in no optimizer, and not part of the
model's parameters or state_dict (a checkpoint keeps only a SHA-256 of its weights, so a resume or a reload
with different feature weights is refused rather than silently inexact). It is rebuilt from the config:
VGG16/VGG19 from a local weights file (or torchvision's download where there is a network), the project's
digit classifier from its checkpoint, or any module given as a `_target_`.

Images arrive in the data's normalised space (`mean`/`std` of the data config, [-1, 1] usually); the loss
brings them to [0, 1], the convention of gan_cli.metrics.features, and each network normalises from there.
"""

from __future__ import annotations

import urllib.error
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.errors import UserError
from gan_cli.metrics.features import to_channels, weights_sha256

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: arch -> torchvision's layer table (cfgs key) and its ImageNet weights enum name
VGG_ARCHS = {"vgg16": ("D", "VGG16_Weights"), "vgg19": ("E", "VGG19_Weights")}


# --- VGG -------------------------------------------------------------------------------------------
def vgg_layer_names(arch: str) -> list[str]:
    """The names of torchvision's `vgg.features` modules, in order: conv1_1, relu1_1, conv1_2, ..., pool5."""
    from torchvision.models.vgg import cfgs

    names, block, index = [], 1, 0
    for item in cfgs[VGG_ARCHS[arch][0]]:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:
            index += 1
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
    return names


def vgg_weights(arch: str, weights_path: str | None) -> dict[str, Tensor]:
    """The ImageNet weights of `arch`: a local file (torchvision's vgg16-397923af.pth, a whole VGG's or only its
    `features`' state_dict), else torchvision's download (cached under torch's hub folder)."""
    import torchvision.models as tvm

    weights = getattr(tvm, VGG_ARCHS[arch][1]).IMAGENET1K_V1
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise UserError(f"model.perceptual.weights_path={path} is not a file. Point it at the {arch} ImageNet "
                            f"weights ({Path(weights.url).name}, from {weights.url}).")
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as err:  # RuntimeError: a wrong hash
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise UserError(
            f"The {arch} weights of the perceptual loss are not on this machine and could not be downloaded from "
            f"{weights.url} ({err}). On a machine with a network, download that file and either put it at {cache} "
            f"or pass model.perceptual.weights_path=/path/to/{Path(weights.url).name}. Offline, the digit "
            "classifier is a feature network too: model/perceptual=digits model.perceptual.classifier_ckpt=..."
        ) from err


class VGGFeatures(nn.Module):
    """torchvision's VGG `features` (no batch norm) with its layers named as in the papers (conv1_1, relu1_1,
    ..., pool5), taking images in [0, 1] (grey ones repeated over three channels, then ImageNet-normalised).
    The ReLUs are not in-place, so any layer's output can be read."""

    def __init__(self, arch: str = "vgg16", weights_path: str | None = None) -> None:
        super().__init__()
        if arch not in VGG_ARCHS:
            raise UserError(f"model.perceptual.arch={arch}: choose one of {', '.join(VGG_ARCHS)}.")
        from torchvision.models.vgg import cfgs, make_layers

        modules = [nn.ReLU() if isinstance(m, nn.ReLU) else m for m in make_layers(cfgs[VGG_ARCHS[arch][0]])]
        names = vgg_layer_names(arch)
        self.body = nn.Sequential(OrderedDict(zip(names, modules)))
        self.arch = arch
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.load_torchvision(vgg_weights(arch, weights_path), names)

    def load_torchvision(self, state: dict[str, Tensor], names: list[str]) -> None:
        """Load a state_dict in torchvision's numbering (features.0.weight or 0.weight) into the named layers."""
        renamed = {}
        for key, value in state.items():
            index, _, param = key.removeprefix("features.").partition(".")
            if index.isdigit() and not key.startswith("classifier."):
                renamed[f"{names[int(index)]}.{param}"] = value
        try:
            missing, unexpected = self.body.load_state_dict(renamed, strict=False)
            problem = f"keys missing: {missing[:4]}, unexpected: {unexpected[:4]}" if missing or unexpected else ""
        except RuntimeError as err:  # the same names with other shapes: another VGG's file
            problem = str(err).splitlines()[-1].strip()
        if problem:
            raise UserError(f"The weights file given to model.perceptual does not hold {self.arch}'s layers "
                            f"({problem}). Give torchvision's file for model.perceptual.arch={self.arch}, or set the "
                            "arch it was made for.")

    def layer_names(self) -> list[str]:
        return list(self.body._modules)

    def forward(self, images: Tensor) -> Tensor:
        return self.body(self.normalise(images))

    def normalise(self, images: Tensor) -> Tensor:
        return (to_channels(images, 3) - self.mean) / self.std

    def feature_layers(self, images: Tensor, names: Sequence[str]) -> list[Tensor]:
        """The outputs of the named layers, running the network only as deep as the deepest of them."""
        wanted, found = set(names), {}
        x = self.normalise(images)
        for name, module in self.body.named_children():
            x = module(x)
            if name in wanted:
                found[name] = x
                if len(found) == len(wanted):
                    break
        return [found[name] for name in names]


# --- the loss --------------------------------------------------------------------------------------
def state_sha256(module: nn.Module) -> Tensor:
    """The SHA-256 of a module's weights (gan_cli.metrics.features.weights_sha256) as 32 bytes, to keep as a buffer."""
    return torch.frombuffer(bytearray.fromhex(weights_sha256(module)), dtype=torch.uint8)


class PerceptualLoss(nn.Module):
    """weight * mean over `layers` of the mean squared difference of the frozen `network`'s features of x and y.

    `layers` are names of the network's layers: for VGGFeatures conv/relu/pool names (relu2_2, relu3_3, ...);
    for any other module the names of its submodules (`named_modules()`), read with forward hooks. With no
    layers the loss compares the network's output (the first element if it returns a tuple, as a
    FeatureNetwork does: the digit classifier's penultimate features). `mean`/`std`: the data's
    normalisation, undone to give the network images in [0, 1].
    """

    def __init__(self, network: nn.Module, layers: Sequence[str] | None = None, weight: float = 1.0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise UserError(f"model.perceptual.network must build a torch.nn.Module, not {type(network).__name__}.")
        network.eval().requires_grad_(False)
        # Kept outside the module tree: not in parameters() (no optimizer sees it), not in state_dict (the
        # checkpoint does not carry a copy of pretrained weights), and train() does not switch it out of eval.
        object.__setattr__(self, "network", network)
        self.layers, self.weight = list(layers or []), float(weight)
        available = self.available_layers()
        unknown = [name for name in self.layers if name not in available]
        if unknown:
            raise UserError(f"model.perceptual.layers: {', '.join(unknown)} not in {type(network).__name__}. "
                            f"Its layers: {', '.join(available[:40])}{' ...' if len(available) > 40 else ''}.")
        self.register_buffer("data_mean", None if mean is None else torch.tensor(list(mean)).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("data_std", None if std is None else torch.tensor(list(std)).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("network_sha256", state_sha256(network))

    def available_layers(self) -> list[str]:
        if hasattr(self.network, "layer_names"):
            return self.network.layer_names()
        return [name for name, _ in self.network.named_modules() if name]

    # --- features ----------------------------------------------------------------------------------
    def to_unit_range(self, images: Tensor) -> Tensor:
        return images if self.data_mean is None else images * self.data_std + self.data_mean

    def features(self, images: Tensor) -> list[Tensor]:
        """The chosen layers' outputs for images in the data's normalised space."""
        x = self.to_unit_range(images)
        if not self.layers:
            out = self.network(x)
            return [out[0] if isinstance(out, (tuple, list)) else out]
        if hasattr(self.network, "feature_layers"):
            return self.network.feature_layers(x, self.layers)
        found: dict[str, Tensor] = {}
        modules = dict(self.network.named_modules())
        # copies: a later in-place layer (ReLU(inplace=True)) would otherwise overwrite what was read
        hooks = [modules[name].register_forward_hook(lambda _m, _i, out, key=name: found.__setitem__(key, out.clone()))
                 for name in self.layers]
        try:
            self.network(x)
        finally:
            for hook in hooks:
                hook.remove()
        return [found[name] for name in self.layers]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        pairs = zip(self.features(x), self.features(y))
        return self.weight * torch.stack([F.mse_loss(fx, fy) for fx, fy in pairs]).mean()

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The weighted perceptual distance between two batches (gradients flow to x and y, never to the net)."""
        return self(x, y)

    # --- the hidden network follows the module ---------------------------------------------------------
    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.network._apply(fn, recurse)
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        saved = state_dict.get(prefix + "network_sha256")
        if saved is not None and not torch.equal(saved.cpu(), self.network_sha256.cpu()):
            raise UserError("The perceptual loss's feature network has other weights than when this checkpoint was "
                            "written (its weights file or classifier checkpoint changed), so the run would not go "
                            "on as it was trained. Point model.perceptual at the same weights.")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f"network={type(self.network).__name__}, layers={self.layers}, weight={self.weight}"


# --- the configs' builders -------------------------------------------------------------------------
def vgg_perceptual(arch: str = "vgg16", weights_path: str | None = None,
                   layers: Sequence[str] = ("relu2_2", "relu3_3"), weight: float = 1.0,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> PerceptualLoss:
    """model/perceptual=vgg: the perceptual loss through torchvision's ImageNet VGG."""
    return PerceptualLoss(VGGFeatures(arch, weights_path), layers, weight, mean, std)


def classifier_perceptual(classifier_ckpt: str | None = None, layers: Sequence[str] | None = None,
                          weight: float = 1.0, mean: Sequence[float] | None = None,
                          std: Sequence[float] | None = None) -> PerceptualLoss:
    """model/perceptual=digits: the perceptual loss through a `gan-train model=classifier` checkpoint (its
    penultimate features by default), which works offline."""
    from gan_cli.metrics.features import ClassifierFeatures

    if not classifier_ckpt:
        raise UserError("model.perceptual.classifier_ckpt is not set: model/perceptual=digits compares images in the "
                        "features of a digit classifier. Train one offline with `gan-train model=classifier "
                        "data=mnist_5k` and pass model.perceptual.classifier_ckpt=<that run>/checkpoints/last.ckpt.")
    return PerceptualLoss(ClassifierFeatures(classifier_ckpt), layers, weight, mean, std)
