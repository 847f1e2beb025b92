"""What model=rbm and model=dbn share: the coding of images as visible units, the checks of the CD settings, the
SGD optimizer with momentum and weight decay on W only, the RBM's scores, and its filters as images."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.errors import UserError
from gan_cli.models.base import GenerativeModule
from gan_cli.models.classic.rbm_nets import RBMNet, bernoulli

BINARIZE = ("none", "threshold", "sample")
RECONSTRUCTIONS = ("probabilities", "sample")


class VisibleCoding(nn.Module):
    """Between the data's normalised images and visible units in [0, 1] (one per pixel and channel).

    binarize="none" keeps the intensities as probabilities; "threshold" makes each pixel 1 above 0.5;
    "sample" draws each pixel ~ Bernoulli(intensity) every time an image is trained on (scored images
    are thresholded then, so that the scores are deterministic)."""

    def __init__(self, channels: PositiveInt, image_size: PositiveInt, mean, std, binarize: str = "none") -> None:
        super().__init__()
        self.shape = (channels, image_size, image_size)
        self.binarize = binarize
        for name, values in (("mean", mean), ("std", std)):  # per channel; not state: they come from the data
            self.register_buffer(name, torch.as_tensor(list(values), dtype=torch.float32).view(1, -1, 1, 1),
                                 persistent=False)

    @property
    def units(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def unit(self, images: Tensor) -> Tensor:
        """Normalised images (N, C, H, W) -> intensities in [0, 1], flattened (N, C*H*W)."""
        return (images * self.std + self.mean).clamp(0, 1).flatten(1)

    def visible(self, images: Tensor, draw: bool) -> Tensor:
        """The visible units of normalised images; `draw` samples them where binarize="sample"."""
        x = self.unit(images)
        if self.binarize == "sample" and draw:
            return bernoulli(x)
        if self.binarize != "none":
            return (x > 0.5).to(x.dtype)
        return x

    def images(self, units: Tensor) -> Tensor:
        """Visible units in [0, 1] (N, C*H*W) -> images in the data's normalised space."""
        return (units.view(-1, *self.shape) - self.mean) / self.std


@torch.no_grad()
def data_logits(coding: VisibleCoding, images: Tensor, floor: float = 1e-3) -> Tensor:
    """log(p_i / (1 - p_i)) of the share p_i of training images in which visible unit i is on (its mean
    intensity), p_i kept within [floor, 1 - floor]: Hinton's guide, section 8, starts the visible biases
    there, so that the hidden units need not learn the pixels' base rates first."""
    x = coding.unit(images) if coding.binarize in ("none", "sample") else coding.visible(images, draw=False)
    p = x.mean(0).clamp(floor, 1 - floor)
    return torch.log(p / (1 - p))


def filter_images(W: Tensor, coding: VisibleCoding, count: int = 64) -> Tensor:
    """The first `count` columns of W (visible x hidden) as images, each stretched to [0, 1] (the usual
    picture of an RBM's receptive fields), in the data's normalised space."""
    filters = W[:, :count].t().detach()
    low, high = filters.min(1, keepdim=True).values, filters.max(1, keepdim=True).values
    return coding.images((filters - low) / (high - low).clamp_min(1e-12))


def save_plain_hyperparameters(module: GenerativeModule, mean, std, ignore: tuple[str, ...] = ()) -> None:
    """save_hyperparameters with the data's mean and std as plain lists (a config's ListConfig would make
    checkpoints unreadable with weights_only=True)."""
    module.save_hyperparameters(ignore=["mean", "std", *ignore], frame=inspect.currentframe().f_back)
    module.hparams.update(mean=[float(m) for m in mean], std=[float(s) for s in std])


def check_cd_settings(lr: float, k: int, weight_decay: float, initial_momentum: float, final_momentum: float,
                      momentum_epochs: int, binarize: str, init_std: float, reconstruction: str) -> None:
    """UserErrors for the settings model=rbm and model=dbn share."""
    if lr <= 0:
        raise UserError(f"model.lr={lr}: the CD learning rate must be positive (Hinton's guide: 0.1 for W; try 0.05).")
    if k < 1:
        raise UserError(f"model.k={k}: CD-k runs k Gibbs steps per update; give 1 or more (1 is CD-1, the default).")
    if weight_decay < 0:
        raise UserError(f"model.weight_decay={weight_decay}: give 0 (off) or a small positive cost such as 2.0e-4.")
    for name, value in (("initial_momentum", initial_momentum), ("final_momentum", final_momentum)):
        if not 0 <= value < 1:
            raise UserError(f"model.{name}={value}: momentum must be in [0, 1) (Hinton's guide: 0.5, then 0.9).")
    if momentum_epochs < 0:
        raise UserError(f"model.momentum_epochs={momentum_epochs}: the epochs at initial_momentum, 0 or more.")
    if binarize not in BINARIZE:
        raise UserError(f"model.binarize={binarize!r}: choose one of {', '.join(BINARIZE)}.")
    if reconstruction not in RECONSTRUCTIONS:
        raise UserError(f"model.reconstruction={reconstruction!r}: choose one of {', '.join(RECONSTRUCTIONS)}.")
    if init_std <= 0:
        raise UserError(f"model.init_std={init_std}: W starts as N(0, init_std^2); give a small positive value (0.01).")


def momentum_optimizer(rbm: RBMNet, lr: float, weight_decay: float, momentum: float) -> torch.optim.SGD:
    """SGD over the RBM's parameters: weight decay on W only; momentum is set before every step."""
    return torch.optim.SGD(rbm.param_groups(weight_decay), lr=lr, momentum=momentum)


@torch.no_grad()
def rbm_scores(rbm: RBMNet, v: Tensor, batch_size: int = 500) -> dict[str, Tensor]:
    """Per-image pseudo-log-likelihood (of v thresholded at 0.5: the PLL is a score of binary vectors),
    free energy and reconstruction error (mean squared error per pixel of the mean-field reconstruction)."""
    parts: dict[str, list[Tensor]] = {"pll": [], "free_energy": [], "recon_error": []}
    for chunk in v.split(batch_size):
        parts["pll"].append(rbm.pseudo_log_likelihood((chunk > 0.5).to(chunk.dtype)))
        parts["free_energy"].append(rbm.free_energy(chunk))
        parts["recon_error"].append((rbm.reconstruct(chunk) - chunk).pow(2).mean(1))
    return {name: torch.cat(values) for name, values in parts.items()}


def dataset_images(dataset, count: int | None = None, seed: int = 0) -> Tensor:
    """`count` images of a split (a fixed random choice, the same every time), or all of them."""
    indices = range(len(dataset))
    if count is not None and count < len(dataset):
        indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    return torch.stack([dataset[i]["image"] for i in indices])
