"""`model=dbn`: a deep belief net (Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov 2006): RBMs stacked
and trained greedily, layer by layer, each on the hidden probabilities of the one below; then unrolled into
a feed-forward sigmoid network with a softmax output layer and fine-tuned as a classifier by backprop.

The lecture's question is what the pre-training is worth, so the same architecture is trained from random
initialisation on the same batches during fine-tuning (`baseline=true`): gan-eval reports the held-out
`accuracy` of the pre-trained net next to `random_init_accuracy`.

Epochs 0 .. L*pretrain_epochs-1 pre-train layer e // pretrain_epochs; the next finetune_epochs fine-tune.
The phase follows from the epoch and the unrolling is marked by a buffer, so resumed runs are exact.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics.classification import MulticlassAccuracy

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.models.base import GenerativeModule
from gan_cli.models.classic.rbm_nets import RBMNet, momentum_at, set_momentum
from gan_cli.models.classic.rbm_shared import (VisibleCoding, check_cd_settings, data_logits, dataset_images,
                                               filter_images, momentum_optimizer, save_plain_hyperparameters)
from gan_cli.models.contract import LabelClassifier, SelfEvaluating

log = logging.getLogger(__name__)


def sigmoid_net(sizes: list[int], num_classes: int) -> nn.Sequential:
    """Linear + sigmoid for each pair of sizes, then a linear layer to the class logits (softmax in the loss)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], num_classes))


class DBN(GenerativeModule, LabelClassifier, SelfEvaluating):
    """RBMs of `layers` hidden units each (the first sees the C*H*W pixels), pre-trained by CD-k for
    `pretrain_epochs` epochs each (momentum, weight decay and binarize as model=rbm, momentum_epochs
    counted within each layer's epochs), then `finetune_epochs` epochs of cross-entropy with `optimizer`
    at `finetune_lr`. With `baseline=true` the same network from PyTorch's default random initialisation
    trains alongside, on the same batches with the same optimizer."""

    no_samples_reason = ("this deep belief net is fine-tuned into a classifier, which labels digits rather than "
                         "drawing them. gan-eval ckpt_path=... reports its held-out accuracy next to the same network "
                         "trained from random initialisation; to draw digits from Gibbs chains, train model=rbm.")

    def __init__(self, channels: PositiveInt, image_size: PositiveInt, num_classes: int, mean, std,
                 optimizer: Callable[..., Optimizer], layers: list[int] = (500, 500), pretrain_epochs: int = 5,
                 finetune_epochs: int = 5, lr: PositiveFloat = 0.1, k: int = 1, weight_decay: float = 2e-4,
                 initial_momentum: float = 0.5, final_momentum: float = 0.9, momentum_epochs: int = 2,
                 reconstruction: str = "probabilities", binarize: str = "none", init_std: float = 0.01,
                 init_visible_bias: bool = True, finetune_lr: float = 0.1, baseline: bool = True) -> None:
        super().__init__()
        check_cd_settings(lr, k, weight_decay, initial_momentum, final_momentum, momentum_epochs, binarize, init_std,
                          reconstruction)
        layers = [int(n) for n in layers]
        if not layers or min(layers) < 1:
            raise UserError(f"model.layers={layers}: give the hidden units of each stacked RBM, e.g. "
                            "model.layers=[500,500,2000] (Hinton et al. 2006) or [256,256].")
        if num_classes < 2:
            raise UserError(f"model=dbn is fine-tuned as a classifier and this data has "
                            f"data.num_classes={num_classes}. Use labelled data (data=mnist_5k, mnist, ...), or "
                            "model=rbm to model unlabelled images.")
        if pretrain_epochs < 1 or finetune_epochs < 1:
            raise UserError(f"model.pretrain_epochs={pretrain_epochs}, model.finetune_epochs={finetune_epochs}: "
                            "both must be 1 or more (the randomly initialised network is the baseline, "
                            "model.baseline=true).")
        if finetune_lr <= 0:
            raise UserError(f"model.finetune_lr={finetune_lr}: the fine-tuning learning rate must be positive.")
        self.automatic_optimization = False
        save_plain_hyperparameters(self, mean, std, ignore=("optimizer",))
        self.coding = VisibleCoding(channels, image_size, mean, std, binarize)
        sizes = [self.coding.units, *layers]
        self.rbms = nn.ModuleList(RBMNet(n_in, n_out, init_std) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.classifier = sigmoid_net(sizes, num_classes)
        self.baseline = sigmoid_net(sizes, num_classes) if baseline else None
        self.register_buffer("unrolled", torch.tensor(False))
        self.register_buffer("started", torch.tensor(False))
        self.init_visible_bias = init_visible_bias
        self.optimizer, self.finetune_lr = optimizer, finetune_lr
        self.lr, self.k, self.weight_decay, self.reconstruction = lr, k, weight_decay, reconstruction
        self.momentum = (initial_momentum, final_momentum, momentum_epochs)
        self.pretrain_epochs, self.finetune_epochs = pretrain_epochs, finetune_epochs
        self.num_classes, self.feature_dim = num_classes, layers[-1]
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.val_random_init_accuracy = MulticlassAccuracy(num_classes, average="micro")

    # --- the schedule ----------------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        return len(self.rbms) * self.pretrain_epochs + self.finetune_epochs

    def layer_at(self, epoch: int) -> int | None:
        """The RBM pre-trained in `epoch` (0 = the one on the pixels), or None while fine-tuning."""
        layer = epoch // self.pretrain_epochs
        return layer if layer < len(self.rbms) else None

    def on_fit_start(self) -> None:
        if self.init_visible_bias and not self.started:  # the first RBM's visible biases, as model=rbm
            images = dataset_images(self.trainer.datamodule.train_set).to(self.device)
            self.rbms[0].b.data.copy_(data_logits(self.coding, images))
        self.started.fill_(True)
        planned = self.trainer.max_epochs
        if planned is not None and 0 <= planned < self.total_epochs:
            log.warning("model=dbn pre-trains %d RBMs for %d epochs each and fine-tunes for %d: %d epochs, but "
                        "trainer.max_epochs=%d cuts it short. Set trainer.max_epochs=%d for the whole schedule.",
                        len(self.rbms), self.pretrain_epochs, self.finetune_epochs, self.total_epochs, planned,
                        self.total_epochs)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.current_epoch + 1 >= self.total_epochs:  # the schedule is done: a longer max_epochs stops here
            self.trainer.should_stop = True

    # --- inference ---------------------------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        """Class logits of images normalised like the data (the fine-tuned, pre-trained network)."""
        return self.classifier(self.coding.visible(images, draw=False))

    def features(self, images: Tensor) -> Tensor:
        """The last hidden layer's activations (N, feature_dim)."""
        return self.classifier[:-1](self.coding.visible(images, draw=False))

    def represent(self, v: Tensor, layers: int) -> Tensor:
        """The hidden probabilities of the first `layers` RBMs, bottom up: the data of RBM number `layers`."""
        for rbm in self.rbms[:layers]:
            v = rbm.hidden_probs(v)
        return v

    # --- training ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizers = [momentum_optimizer(rbm, self.lr, self.weight_decay, self.momentum[0]) for rbm in self.rbms]
        optimizers.append(self.optimizer(self.classifier.parameters(), lr=self.finetune_lr))
        if self.baseline is not None:
            optimizers.append(self.optimizer(self.baseline.parameters(), lr=self.finetune_lr))
        return optimizers

    def training_step(self, batch: dict, batch_idx: int) -> None:
        optimizers = self.optimizers()
        layer = self.layer_at(self.current_epoch)
        if layer is not None:
            self.pretrain_step(layer, batch["image"], optimizers[layer])
        else:
            self.finetune_step(batch["image"], batch["label"], optimizers[len(self.rbms):])

    def pretrain_step(self, layer: int, images: Tensor, optimizer) -> None:
        """One CD-k update of RBM `layer` on the hidden probabilities of the (fixed) layers below."""
        rbm = self.rbms[layer]
        with torch.no_grad():
            v = self.represent(self.coding.visible(images, draw=True), layer)
        momentum = momentum_at(self.current_epoch - layer * self.pretrain_epochs, *self.momentum)
        set_momentum(optimizer.optimizer, momentum)
        difference, _, _ = rbm.cd_step(v, self.k, self.reconstruction)
        optimizer.step()
        self.track_finite(f"layer{layer + 1}_free_energy_difference", difference)
        if self.logs_this_step:
            with torch.no_grad():
                recon = (rbm.reconstruct(v) - v).pow(2).mean()
            self.log_dict({f"train/layer{layer + 1}_recon_error": recon,
                           f"train/layer{layer + 1}_free_energy_difference": difference, "train/momentum": momentum})

    def finetune_step(self, images: Tensor, labels: Tensor, optimizers: list) -> None:
        """One cross-entropy step of the unrolled net, and of the randomly initialised one on the same batch."""
        if not self.unrolled:
            self.unroll()
        v = self.coding.visible(images, draw=False)
        nets = [("loss", self.classifier), ("random_init_loss", self.baseline)]
        for (name, net), optimizer in zip(nets, optimizers):
            logs = self.update(optimizer, F.cross_entropy(net(v), labels), name, [net], gradient_logs=dict)
            self.log(f"train/{name}", logs[f"train/{name}"], prog_bar=name == "loss")

    @torch.no_grad()
    def unroll(self) -> None:
        """Copy each RBM's W and hidden bias c into the feed-forward layer that replaces it (the output
        layer keeps its random initialisation)."""
        for rbm, linear in zip(self.rbms, self.classifier[0::2]):
            linear.weight.copy_(rbm.W.t())
            linear.bias.copy_(rbm.c)
        self.unrolled.fill_(True)
        log.info("Epoch %d: pre-training done; fine-tuning the unrolled network as a classifier.", self.current_epoch)

    # --- held-out scores -----------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        images, labels = batch["image"], batch["label"]
        layer = self.layer_at(self.current_epoch)
        if layer is not None:  # how well the RBM being trained reconstructs held-out data
            v = self.represent(self.coding.visible(images, draw=False), layer)
            recon = (self.rbms[layer].reconstruct(v) - v).pow(2).mean()
            self.log(f"val/layer{layer + 1}_recon_error", recon, batch_size=len(v))
            return
        v = self.coding.visible(images, draw=False)
        logits = self.classifier(v)
        self.val_accuracy.update(logits, labels)
        self.log("val/loss", F.cross_entropy(logits, labels), batch_size=len(labels))
        self.log("val/accuracy", self.val_accuracy, prog_bar=True, batch_size=len(labels))
        if self.baseline is not None:
            self.val_random_init_accuracy.update(self.baseline(v), labels)
            self.log("val/random_init_accuracy", self.val_random_init_accuracy, batch_size=len(labels))

    def on_validation_end(self) -> None:
        metrics = self.trainer.callback_metrics
        if "val/accuracy" in metrics and self.layer_at(self.current_epoch) is None and self.trainer.is_global_zero:
            log.info("Epoch %d: held-out accuracy %.2f%% pre-trained, %.2f%% from random initialisation",
                     self.current_epoch, 100 * float(metrics["val/accuracy"]),
                     100 * float(metrics.get("val/random_init_accuracy", float("nan"))))

    @torch.no_grad()
    def evaluation_scores(self, evaluator, datamodule) -> dict[str, float]:
        """gan-eval: the baseline's accuracy on the reference split (the evaluator measures `accuracy`, the
        pre-trained net's, on the same images in the same way: the mean of the per-class accuracies)."""
        if self.baseline is None:
            return {}
        from torch.utils.data import DataLoader

        from gan_cli.metrics.scores import LabelAccuracy

        accuracy = LabelAccuracy(self.num_classes).to(self.device)
        loader = DataLoader(datamodule.build(evaluator.reference_split), batch_size=evaluator.batch_size)
        for batch in loader:
            v = self.coding.visible(batch["image"].to(self.device), draw=False)
            accuracy.update(self.baseline(v), batch["label"].to(self.device))
        return {"random_init_accuracy": accuracy.compute()["label_accuracy"]}

    # --- pictures ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """The first RBM's filters (its W's columns as images), and once fine-tuning has started the first
        layer's fine-tuned weights, which began as those filters."""
        shown = {"filters": (filter_images(self.rbms[0].W, self.coding), 8)}
        if self.unrolled:
            shown["finetuned_filters"] = (filter_images(self.classifier[0].weight.t(), self.coding), 8)
        return shown
