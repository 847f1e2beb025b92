"""`model=classifier`: an image classifier trained on labelled data, the judge of generated images.

The metrics use a trained checkpoint twice: its hidden layer as the feature space of a Fréchet distance
(`features()`), and its predictions to check that a conditional GAN draws the class it was asked for
(`forward()`). Held-out accuracy is measured on the data's test split after every epoch (`val/accuracy`).
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR
from torchmetrics.classification import MulticlassAccuracy

from gan_cli.config.ranges import PositiveFloat
from gan_cli.errors import UserError
from gan_cli.models.base import GenerativeModule
from gan_cli.models.contract import LabelClassifier

log = logging.getLogger(__name__)

LR_DECAYS = ("cosine", "none")


class HeldOutAccuracy(GenerativeModule):
    """Validation and test loops of a classifying model: its `_evaluate(batch, stage, accuracy)` logs the
    stage's scores; the held-out accuracy of each epoch also goes to the run's train.log."""

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_accuracy)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_accuracy)

    def on_validation_end(self) -> None:
        # Lightning has computed the epoch's metrics by now; the line also goes to the run's train.log.
        accuracy = self.trainer.callback_metrics.get("val/accuracy")
        if accuracy is not None and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            log.info("Epoch %d: held-out accuracy %.2f%% (val/accuracy)", self.current_epoch, 100 * float(accuracy))


class Classifier(HeldOutAccuracy, LabelClassifier):
    """Cross-entropy training of `network` (e.g. gan_cli.models.classic.classifier_nets.ConvClassifier), which must have
    `features()`, `num_classes`, `channels`, `image_size` and `feature_dim`.

    Images are expected normalised as the data normalises them. `lr_decay="cosine"` lowers the learning
    rate along a cosine to zero over the run's batches. With `augment_shift` > 0 every training image is
    moved by a random whole number of pixels, up to `augment_shift` in each direction. With
    `data.labels_per_class=N` it learns from the N labelled images per class only (`labelled_image`).
    """

    def __init__(self, network: nn.Module, optimizer: Callable[..., Optimizer], lr: PositiveFloat = 1e-3,
                 lr_decay: str = "cosine", augment_shift: int = 0) -> None:
        super().__init__()
        if network.num_classes < 2:
            raise UserError(
                f"model=classifier learns labels, and this data has data.num_classes={network.num_classes}"
                f"{' (no labels)' if not network.num_classes else ''}. Use labelled data (data=mnist_5k, mnist, "
                "fashion_mnist, cifar10), or data=image_folder with data.dataset.labels_from_subfolders=true "
                "data.num_classes=N (one sub-folder per class)."
            )
        if lr_decay not in LR_DECAYS:
            raise UserError(f"model.lr_decay={lr_decay!r}: choose one of {', '.join(LR_DECAYS)}.")
        if augment_shift < 0:
            raise UserError(f"model.augment_shift={augment_shift}: give a shift in pixels, 0 (off) or more.")
        self.network, self.optimizer = network, optimizer
        self.lr, self.lr_decay, self.augment_shift = lr, lr_decay, augment_shift
        self.save_hyperparameters(ignore=["network", "optimizer"])
        self.num_classes: int = network.num_classes
        self.channels: int = network.channels
        self.image_size: int = network.image_size
        self.feature_dim: int = network.feature_dim
        self.train_accuracy = MulticlassAccuracy(self.num_classes, average="micro")
        self.val_accuracy = MulticlassAccuracy(self.num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(self.num_classes, average="micro")

    # --- inference ---------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, num_classes) of images normalised like the data."""
        return self.network(x)

    def features(self, x: Tensor) -> Tensor:
        """The hidden-layer activations (N, feature_dim): the feature space of the Fréchet distance."""
        return self.network.features(x)

    # --- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters(), lr=self.lr)
        if self.lr_decay == "none":
            return optimizer
        steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise UserError("model.lr_decay=cosine decays over the whole run, which has no set length: set "
                            "trainer.max_epochs or trainer.max_steps, or model.lr_decay=none.")
        schedule = CosineAnnealingLR(optimizer, T_max=max(int(steps), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        # With data.labels_per_class=N the batch's images are mostly unlabelled: train on its batch of
        # labelled examples alone (the baseline of a semi-supervised model), one step per batch as always.
        if "labelled_image" in batch:
            images, labels = batch["labelled_image"], batch["labelled_label"]
        else:
            images, labels = batch["image"], batch["label"]
        if self.augment_shift:
            images = random_shift(images, self.augment_shift)
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        self.track_finite("loss", loss)
        self.train_accuracy.update(logits.detach(), labels)
        if self.logs_this_step:  # logging every step would cost time for values Lightning does not write
            self.log("train/loss", loss.detach(), prog_bar=True)
        self.log("train/accuracy", self.train_accuracy, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: dict, stage: str, accuracy: MulticlassAccuracy) -> None:
        """Loss and accuracy on held-out images, averaged over the epoch."""
        logits = self(batch["image"])
        labels = batch["label"]
        accuracy.update(logits, labels)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), batch_size=labels.size(0), sync_dist=True)
        self.log(f"{stage}/accuracy", accuracy, prog_bar=True, batch_size=labels.size(0))



def random_shift(images: Tensor, max_shift: int) -> Tensor:
    """Each image moved by its own random (dy, dx) in [-max_shift, max_shift], edges repeated into the gap."""
    n, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, -1, 1) + dy  # (n, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, -1) + dx  # (n, 1, width)
    batch = torch.arange(n, device=images.device).view(-1, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
