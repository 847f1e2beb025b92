"""`model=capsnet`: CapsNet (Sabour, Frosst & Hinton 2017), a classifier of capsules routed by agreement,
with a decoder that reconstructs the digit from its capsule.

It classifies rather than draws: `forward()` gives the digit capsules' lengths as class scores, so gan-eval
reports its held-out accuracy, and held-out accuracy is logged after every epoch (`val/accuracy`). Its
figure is the paper's: the 16 dimensions of a held-out digit's capsule, each perturbed from -0.25 to 0.25.

The network always sees and reconstructs images in [0, 1], as in the paper, whatever the data's
normalisation (`mean`, `std`: the data's, e.g. [-1, 1] for mnist_5k), and adapts to data.image_size
(the paper's 28 px: data.image_size=28).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ExponentialLR
from torchmetrics.classification import MulticlassAccuracy

from gan_cli.config.ranges import PositiveFloat
from gan_cli.data.datamodule import dataset_labels, denormalize
from gan_cli.errors import UserError
from gan_cli.models.classic.capsnet_nets import CapsuleDecoder, CapsuleNetwork
from gan_cli.models.classic.classifier import HeldOutAccuracy, random_shift
from gan_cli.models.contract import LabelClassifier

#: the paper's figure: each capsule dimension moved by -0.25, -0.20, ..., 0.25
PERTURBATIONS = torch.arange(-5, 6) * 0.05


def margin_loss(lengths: Tensor, labels: Tensor, m_plus: float = 0.9, m_minus: float = 0.1,
                down_weight: float = 0.5) -> Tensor:
    """The paper's eq. 4, summed over classes, averaged over the batch:
    L_k = T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2."""
    present = torch.nn.functional.one_hot(labels, lengths.size(1)).to(lengths.dtype)
    absent = 1 - present
    losses = present * (m_plus - lengths).clamp(min=0) ** 2 + down_weight * absent * (lengths - m_minus).clamp(min=0) ** 2
    return losses.sum(1).mean()


def require(ok: bool, setting: str, want: str) -> None:
    """Refuse a bad model setting, naming it and what it should be."""
    if not ok:
        raise UserError(f"model.{setting}: give {want}.")


class CapsNet(HeldOutAccuracy, LabelClassifier):
    """Margin loss on the digit capsules' lengths plus `reconstruction_weight` times the decoder's sum of
    squared errors per image; Adam, its learning rate times `lr_decay_rate` every `lr_decay_steps` batches
    (smoothly, as the reference code's exponential decay; 1 disables it).

    `reconstruction=False` removes the decoder (the paper's runs without reconstruction);
    `reconstruction_weight=0` keeps it but stops its loss from training anything. With `augment_shift` > 0
    each training image moves by up to that many pixels (the paper's 2 px shifts). `figure_index` picks the
    held-out image whose capsule the perturbation figure shows.
    """

    no_samples_reason = ("CapsNet classifies images (and reconstructs them from their digit capsules) rather than "
                         "drawing new ones. gan-eval ckpt_path=... reports its held-out accuracy; its figures "
                         "(capsule dimensions perturbed, reconstructions) are in the run's samples/ folder.")

    def __init__(self, network: CapsuleNetwork, decoder: CapsuleDecoder, optimizer: Callable[..., Optimizer],
                 lr: PositiveFloat = 1e-3, lr_decay_rate: float = 0.96, lr_decay_steps: int = 2000, m_plus: float = 0.9,
                 m_minus: float = 0.1, down_weight: float = 0.5, reconstruction: bool = True,
                 reconstruction_weight: float = 0.0005, augment_shift: int = 2, figure_index: int = 0,
                 mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)) -> None:
        super().__init__()
        require(0 < lr_decay_rate <= 1, f"lr_decay_rate={lr_decay_rate}", "a factor in (0, 1]; 1 keeps the rate constant")
        require(lr_decay_steps >= 1, f"lr_decay_steps={lr_decay_steps}", "a number of batches, 1 or more")
        require(0 <= m_minus < m_plus <= 1, f"m_plus={m_plus} model.m_minus={m_minus}",
                "margins on capsule lengths with 0 <= m_minus < m_plus <= 1")
        require(down_weight >= 0, f"down_weight={down_weight}", "a weight of 0 or more")
        require(reconstruction_weight >= 0, f"reconstruction_weight={reconstruction_weight}",
                "a weight of 0 (no reconstruction loss) or more")
        require(augment_shift >= 0, f"augment_shift={augment_shift}", "a shift in pixels, 0 (off) or more")
        require(figure_index >= 0, f"figure_index={figure_index}", "the index of a held-out image, 0 or more")
        mean, std = [float(m) for m in mean], [float(s) for s in std]  # plain lists in the checkpoint's hparams
        self.network, self.optimizer = network, optimizer
        self.decoder = decoder if reconstruction else None
        self.save_hyperparameters(ignore=["network", "decoder", "optimizer"])
        self.num_classes: int = network.num_classes
        self.channels: int = network.channels
        self.image_size: int = network.image_size
        self.feature_dim: int = network.num_classes * network.digit_dim
        self.train_accuracy = MulticlassAccuracy(self.num_classes, average="micro")
        self.val_accuracy = MulticlassAccuracy(self.num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(self.num_classes, average="micro")
        self._figure_rows: list[int] | None = None  # held-out indices shown (derived from the data, not state)

    # --- inference ---------------------------------------------------------------------------------
    def unit_range(self, images: Tensor) -> Tensor:
        """Images normalised like the data -> [0, 1], what the network sees and reconstructs."""
        return denormalize(images, self.hparams.mean, self.hparams.std)

    def capsules(self, images: Tensor) -> Tensor:
        """Digit capsules (N, num_classes, digit_dim) of images normalised like the data."""
        return self.network(self.unit_range(images))

    def forward(self, x: Tensor) -> Tensor:
        """Class scores: the digit capsules' lengths (N, num_classes), in [0, 1)."""
        return torch.linalg.vector_norm(self.capsules(x), dim=-1)

    def features(self, x: Tensor) -> Tensor:
        """All digit capsules, flattened (N, num_classes * digit_dim)."""
        return self.capsules(x).flatten(1)

    # --- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters(), lr=self.hparams.lr)
        gamma = self.hparams.lr_decay_rate ** (1 / self.hparams.lr_decay_steps)
        schedule = ExponentialLR(optimizer, gamma)  # lr x lr_decay_rate ** (batches / lr_decay_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def losses(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(class scores, margin loss, the decoder's mean sum of squared errors or None) of [0, 1] images,
        the decoder fed the capsule of the true class."""
        capsules = self.network(images)
        lengths = torch.linalg.vector_norm(capsules, dim=-1)
        hp = self.hparams
        margin = margin_loss(lengths, labels, hp.m_plus, hp.m_minus, hp.down_weight)
        if self.decoder is None:
            return lengths, margin, None
        errors = (self.decoder(capsules, labels) - images) ** 2
        return lengths, margin, errors.flatten(1).sum(1).mean()

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        images, labels = self.unit_range(batch["image"]), batch["label"]
        if self.hparams.augment_shift:
            images = random_shift(images, self.hparams.augment_shift)
        lengths, margin, reconstruction = self.losses(images, labels)
        loss = margin if reconstruction is None else margin + self.hparams.reconstruction_weight * reconstruction
        self.track_finite("loss", loss)
        self.train_accuracy.update(lengths.detach(), labels)
        if self.logs_this_step:  # logging every step would cost time for values Lightning does not write
            self.log("train/loss", loss.detach(), prog_bar=True)
            self.log("train/margin_loss", margin.detach())
            if reconstruction is not None:
                self.log("train/reconstruction_sse", reconstruction.detach())
        self.log("train/accuracy", self.train_accuracy, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: dict, stage: str, accuracy: MulticlassAccuracy) -> None:
        """Accuracy, margin loss and reconstruction error (of the true class's capsule) on held-out images."""
        images, labels = self.unit_range(batch["image"]), batch["label"]
        lengths, margin, reconstruction = self.losses(images, labels)
        accuracy.update(lengths, labels)
        self.log(f"{stage}/margin_loss", margin, batch_size=labels.size(0), sync_dist=True)
        if reconstruction is not None:
            self.log(f"{stage}/reconstruction_sse", reconstruction, batch_size=labels.size(0), sync_dist=True)
        self.log(f"{stage}/accuracy", accuracy, prog_bar=True, batch_size=labels.size(0))

    def on_fit_start(self) -> None:
        if self.decoder is not None and self.trainer.datamodule is not None:
            self.figure_rows(self.trainer.datamodule.test_set)  # a bad figure_index fails now, not after an epoch

    # --- figures -------------------------------------------------------------------------------------
    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """`perturbations`: the paper's figure, one row per dimension of a held-out digit's capsule (of its
        true class), moved from -0.25 to 0.25 in steps of 0.05 (11 columns), decoded; `reconstructions`:
        the first held-out image of each class above its reconstruction from the longest capsule."""
        if self.decoder is None or self._trainer is None or self.trainer.datamodule is None:
            return {}
        test = self.trainer.datamodule.test_set
        shown = [test[i] for i in self.figure_rows(test)]
        images = torch.stack([item["image"] for item in shown]).to(self.device)
        labels = torch.tensor([int(item["label"]) for item in shown], device=self.device)
        capsules = self.capsules(images)
        rebuilt = self.decoder(capsules, torch.linalg.vector_norm(capsules, dim=-1).argmax(1))
        return {"perturbations": (self.to_data_space(self.perturbed(capsules[0], int(labels[0]))), len(PERTURBATIONS)),
                "reconstructions": (torch.cat([images[1:], self.to_data_space(rebuilt[1:])]), len(shown) - 1)}

    def perturbed(self, capsules: Tensor, label: int) -> Tensor:
        """Decoded images (digit_dim * 11, C, H, W) in [0, 1]: row d moves dimension d of `label`'s capsule."""
        dim = capsules.size(1)
        steps = PERTURBATIONS.to(capsules)
        moved = capsules[label] + torch.eye(dim, device=capsules.device).unsqueeze(1) * steps.view(1, -1, 1)
        batch = capsules.expand(dim * len(steps), -1, -1).clone()
        batch[:, label] = moved.reshape(-1, dim)
        return self.decoder(batch, torch.full((len(batch),), label, device=capsules.device))

    def figure_rows(self, test) -> list[int]:
        """[figure_index, then the first held-out image of each class]."""
        if self._figure_rows is None:
            if self.hparams.figure_index >= len(test):
                raise UserError(f"model.figure_index={self.hparams.figure_index}: the held-out split has "
                                f"{len(test)} images; choose 0 to {len(test) - 1}.")
            labels = dataset_labels(test)
            first = [int(torch.nonzero(labels == label)[0]) for label in labels.unique()]
            self._figure_rows = [self.hparams.figure_index, *first]
        return self._figure_rows

    def to_data_space(self, images: Tensor) -> Tensor:
        """[0, 1] images -> normalised like the data (what visuals() return)."""
        mean = torch.as_tensor(list(self.hparams.mean), device=images.device).view(1, -1, 1, 1)
        std = torch.as_tensor(list(self.hparams.std), device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std
