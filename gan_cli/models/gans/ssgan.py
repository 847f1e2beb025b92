"""`model=ssgan`: the semi-supervised GAN of Salimans et al. 2016, "Improved Techniques for Training GANs"
(section 5), whose discriminator is a classifier of K+1 classes: the data's K labels and "generated".

D gives K logits l_1..l_K; the logit of class K+1 is fixed at 0 (any constant would do: softmax is shift
invariant), so with Z = sum_k exp(l_k), p(real | x) = Z / (Z + 1) = sigmoid(logsumexp(l)). D's loss is

    L_supervised   = -E_{x,y labelled} log p(y | x, y <= K)               (cross-entropy over the K classes)
    L_unsupervised = -E_{x unlabelled} log p(real | x) - E_{x ~ G} log(1 - p(real | x))

and L_unsupervised is the GAN objective of the configured loss on the real/fake logit logsumexp(l): with
the non-saturating (BCE) loss it is exactly the paper's. D minimises L_supervised + w L_unsupervised, with
w = `unsupervised_weight` (0.5 by default, as the reference code; w = 0 trains D as a plain classifier). G is trained by feature matching on D's last
hidden layer (the paper's choice for semi-supervised learning) or, with `generator_objective=adversarial`,
by the loss's generator term on the same logit.

Each batch brings a batch of images (`image`, mostly unlabelled) and, with `data.labels_per_class=N`, a
batch of labelled examples (`labelled_image`, `labelled_label`) drawn from the N labelled images per class.
Without `data.labels_per_class` every training label is used: the batch's own images are its labelled batch
(the fully supervised variant, with the GAN terms on top); images labelled -1 count for the GAN terms only.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics.classification import MulticlassAccuracy

from gan_cli.config.ranges import NonNegativeInt, PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.losses.improved import feature_matching_loss
from gan_cli.metrics.ranks import reference_batches
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.models.contract import Sampler, SelfEvaluating
from gan_cli.nets.schedules import LinearDecay

log = logging.getLogger(__name__)

GENERATOR_OBJECTIVES = ("feature_matching", "adversarial")


def real_logit(logits: Tensor) -> Tensor:
    """The real/fake logit of K class logits whose "generated" logit is 0: log Z = logsumexp(l), so that
    sigmoid(log Z) = Z / (Z + 1) = 1 - p(generated | x)."""
    return torch.logsumexp(logits, dim=1)


def supervised_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over the K classes, averaged over the labelled examples (label >= 0); 0 if none."""
    known = labels >= 0
    losses = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


class SSGAN(AdversarialModule, Sampler, SelfEvaluating):
    """An unconditional generator G(z) and a K-class discriminator D(x) (e.g. gan_cli.models.gans.ssgan_nets's
    networks; D needs `num_classes` and `features()`).

    `num_classes` is 0 on purpose: the generator is unconditional, which is what gan-sample and the
    evaluator read; the classifier's K is `classes` (from the discriminator, i.e. data.num_classes).
    The learning rate is constant for `lr_constant_epochs` epochs and then falls linearly over
    `lr_decay_epochs` (the reference code's decay).
    """

    captures_update = True

    num_classes = 0

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 optimizer: Callable[..., Optimizer], lr: PositiveFloat = 6e-4, g_lr: PositiveFloat | None = None,
                 d_lr: PositiveFloat | None = None, generator_objective: str = "feature_matching",
                 unsupervised_weight: float = 0.5, lr_constant_epochs: NonNegativeInt = 50,
                 lr_decay_epochs: NonNegativeInt = 50, num_samples: PositiveInt = 64) -> None:
        super().__init__(loss)
        if generator_objective not in GENERATOR_OBJECTIVES:
            raise UserError(f"model.generator_objective={generator_objective!r}: choose one of "
                            f"{', '.join(GENERATOR_OBJECTIVES)}.")
        if unsupervised_weight < 0:
            raise UserError(f"model.unsupervised_weight={unsupervised_weight}: give a weight >= 0 (0: the "
                            "discriminator is a plain classifier of the labelled images).")
        if getattr(generator, "num_classes", 0):
            raise UserError("model=ssgan's generator is unconditional: set model.generator.num_classes=0.")
        self.generator, self.discriminator = generator, discriminator
        self.optimizer = optimizer
        self.g_lr, self.d_lr = g_lr or lr, d_lr or lr
        self.generator_objective, self.unsupervised_weight = generator_objective, unsupervised_weight
        self.lr_schedule = LinearDecay(lr_constant_epochs, lr_decay_epochs)
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.latent_dim: int = generator.latent_dim
        self.classes: int = discriminator.num_classes
        self.grid_row = 8
        self.register_buffer("fixed_z", torch.randn(num_samples, self.latent_dim))

    def generators(self) -> list[nn.Module]:
        return [self.generator]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator]

    def critic(self) -> Critic:
        """D as a real/fake critic: its score is the real/fake logit logsumexp(l)."""
        return Critic(self.discriminator, lambda network, images: real_logit(network(images)))

    # --- classifying -------------------------------------------------------------------------------
    @torch.no_grad()
    def classify(self, images: Tensor) -> Tensor:
        """D's K class logits of images normalised like the data, in eval mode (no noise layers)."""
        was_training = self.discriminator.training
        self.discriminator.eval()
        logits = self.discriminator(images)
        self.discriminator.train(was_training)
        return logits

    @torch.no_grad()
    def evaluation_scores(self, evaluator, datamodule) -> dict[str, float]:
        """{"accuracy": the share of the reference split (metrics.reference_split, the test split by
        default) that D classifies right}; images labelled -1 are skipped. Under DDP each rank counts its
        share and the counts are summed."""
        accuracy = MulticlassAccuracy(self.classes, average="micro", ignore_index=-1).to(self.device)
        for batch in reference_batches(datamodule, evaluator.reference_split, evaluator.batch_size):
            accuracy.update(self.classify(batch["image"].to(self.device)), batch["label"].to(self.device))
        return {"accuracy": float(accuracy.compute())}

    # --- sampling ----------------------------------------------------------------------------------
    def sample_noise(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """`n` images from G in eval mode. G is unconditional: it takes no labels."""
        if labels is not None:
            raise UserError("model=ssgan's generator is unconditional: it draws no chosen class (leave out label=).")
        return self.generate(self.sample_noise(n))

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """G(z) in eval mode, with the network that samples (the moving average with tricks=[ema])."""
        return self.run_inference(self.generator, z)

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        return {"samples": (self.generate(self.fixed_z), self.grid_row)}

    # --- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizers = super().configure_optimizers()
        return list(optimizers), [LambdaLR(opt, self.lr_schedule) for opt in optimizers]

    def on_train_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "labels_per_class", 0) is None:
            log.info("model=ssgan without data.labels_per_class: every training label is used (the fully "
                     "supervised variant). Set data.labels_per_class=N to keep N labels per class.")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.step_epoch_schedules()

    def training_step(self, batch: dict, batch_idx: int) -> None:
        real = batch["image"]
        if "labelled_image" in batch:
            labelled, labels = batch["labelled_image"], batch["labelled_label"]
        else:  # no data.labels_per_class: every label the batch has
            labelled, labels = real, batch["label"]
        self.log_step(self.run_update(self.adversarial_update, real, labelled, labels),
                      shown=("d_loss", "g_loss", "accuracy"))

    def adversarial_update(self, real: Tensor, labelled: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """A D update, and every k-th batch a G update (replayed from a CUDA graph under engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        logs = self.discriminator_step(real, labelled, labels, opt_d)
        if generator_due:
            logs |= self.generator_step(real, opt_g)
        return logs

    def discriminator_step(self, real: Tensor, labelled: Tensor, labels: Tensor, opt_d) -> dict:
        """Cross-entropy on the labelled batch plus the GAN terms on the batch of images and one of fakes."""
        with torch.no_grad():
            fake = self.generator(self.sample_noise(real.size(0)))
        terms, real_scores, fake_scores = self.discriminator_terms(self.critic(), real, fake)
        unsupervised = sum(terms.values())
        logits = self.discriminator(labelled)
        supervised = supervised_loss(logits, labels)

        def details() -> dict[str, Tensor]:
            known = labels >= 0
            correct = (logits.detach().argmax(1) == labels) & known
            return {"train/d_supervised": supervised.detach(), "train/d_unsupervised": unsupervised.detach(),
                    "train/accuracy": correct.sum() / known.sum().clamp(min=1),
                    **self.discriminator_logs(terms, real_scores, fake_scores, self.discriminator)}

        logs = self.update(opt_d, supervised + self.unsupervised_weight * unsupervised, "d_loss",
                           [self.discriminator], details)
        self.discriminator_updated(self.discriminator)
        return logs

    def generator_step(self, real: Tensor, opt_g) -> dict:
        """Feature matching on D's last hidden layer, or the loss's generator term (D's weights frozen)."""
        with self.toggled_optimizer(opt_g):
            fake = self.generator(self.sample_noise(real.size(0)))
            if self.generator_objective == "feature_matching":
                with torch.no_grad():
                    real_features = self.discriminator.features(self.augment(real))
                g_loss = feature_matching_loss(real_features, self.discriminator.features(self.augment(fake)))
            else:
                g_loss = self.generator_adversarial_loss(self.critic(), fake, real)
            logs = self.update(opt_g, g_loss, "g_loss", [self.generator])
        self.generator_updated()
        return logs
