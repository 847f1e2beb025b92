"""`model=autoencoder`: an autoencoder with a bottleneck (Hinton & Salakhutdinov 2006), fully connected or
convolutional (Masci et al. 2011), with the lecture's variants as settings:

- undercomplete: the code (`code_dim` units) is smaller than the image;
- sparse: `sparsity_weight` (beta) * sum_j KL(rho || rho_hat_j) is added to the loss, rho = `sparsity_target`
  and rho_hat_j the mean activation of code unit j over the batch; the code units must then be logistic
  (`code_activation=sigmoid`, activations in (0, 1)), and the penalty acts on them: the bottleneck layer that
  the decoder reads;
- denoising (Vincent et al. 2010): the encoder sees a corrupted image (`corruption`: masking or gaussian, at
  `corruption_level`) and the loss compares the reconstruction with the clean one.

The code layer is linear by default, as in Hinton & Salakhutdinov's deep autoencoders (logistic code units
train far more slowly from a random start: they begin saturated or all alike); it is the representation
gan-eval probes. The decoder gives a logit per pixel; the reconstruction loss is the cross-entropy of those
logits with the clean image's grey levels in [0, 1] (`reconstruction=cross_entropy`, as Hinton &
Salakhutdinov's logistic output units), or the squared error of their sigmoid (`squared_error`, e.g. for
colour images).

`ImageCoder` holds what the VAE (gan_cli.models.classic.vae) shares: building the networks, pixel conversions,
held-out example images for the logged grids, validation on the test split and the linear probe.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, Dataset, Subset

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.reconstruction import (
    CORRUPTIONS,
    bernoulli_nll,
    corrupt,
    sparsity_penalty,
    squared_error,
)
from gan_cli.models.base import GenerativeModule
from gan_cli.models.contract import SelfEvaluating

RECONSTRUCTIONS = ("cross_entropy", "squared_error")
CODE_ACTIVATIONS = ("linear", "sigmoid")
#: the linear probe: L-BFGS iterations, the L2 weight on standardised features, and the most training images it
#: fits on (a fixed random subset of larger training splits: full MNIST's pixels would take gigabytes in float64)
PROBE_ITERATIONS, PROBE_L2, PROBE_MAX_TRAIN = 100, 1e-3, 10_000


@contextmanager
def fixed_randomness(device: torch.device, seed: int = 0) -> Iterator[None]:
    """Draws from `seed` inside, the caller's random state untouched outside (the same noise in every grid)."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (batch norm's running statistics) and no gradients, restoring the mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 iterations: int = PROBE_ITERATIONS, l2: float = PROBE_L2) -> float:
    """Test accuracy of a multinomial logistic regression fitted on (train_x, train_y).

    Features are standardised with the training set's statistics; the weights start at zero and L-BFGS
    minimises the cross-entropy plus l2 * |W|^2 on the whole training set in float64, so the same
    features always give the same accuracy."""
    train_x, test_x = train_x.double().flatten(1), test_x.double().flatten(1)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    weight = torch.zeros(train_x.size(1), classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=iterations, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float(((test_x @ weight + bias).argmax(1) == test_y).double().mean())


class ImageCoder(GenerativeModule, SelfEvaluating):
    """An encoder and a decoder built for `code_dim` (the networks are Hydra partials: the model gives them
    their sizes), trained with Lightning's automatic optimisation on `objective()`.

    `mean`, `std`: the data's normalisation (images x = (p - mean) / std for brightness p in [0, 1]).
    `num_examples`: held-out images (evenly spaced over the test split) shown in the logged grids.
    """

    def __init__(self, encoder: Callable[..., nn.Module], decoder: Callable[..., nn.Module], code_dim: PositiveInt,
                 encoder_outputs: int, mean: Sequence[float], std: Sequence[float],
                 optimizer: Callable[..., Optimizer], lr: PositiveFloat, num_examples: PositiveInt) -> None:
        super().__init__()
        if code_dim < 1:
            raise UserError(f"model.code_dim={code_dim}: give the size of the code, 1 or more.")
        if num_examples < 2:
            raise UserError(f"model.num_examples={num_examples}: show at least 2 held-out images.")
        self.code_dim, self.lr, self.num_examples = int(code_dim), lr, int(num_examples)
        self.optimizer = optimizer
        self.encoder = encoder(out_features=encoder_outputs)
        self.decoder = decoder(code_dim=self.code_dim)
        self.register_buffer("pixel_mean", torch.tensor([float(v) for v in mean]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor([float(v) for v in std]).view(1, -1, 1, 1), persistent=False)
        self.examples: Tensor | None = None  # set at the start of training (not saved: it is the data's)
        self.num_classes = 0  # unconditional: draws no chosen class

    # --- pixels ------------------------------------------------------------------------------------
    def to_unit(self, images: Tensor) -> Tensor:
        """Normalised images -> brightness in [0, 1] (the targets of the reconstruction)."""
        return (images * self.pixel_std + self.pixel_mean).clamp(0, 1)

    def to_data(self, brightness: Tensor) -> Tensor:
        """Brightness in [0, 1] -> the data's normalisation."""
        return (brightness - self.pixel_mean) / self.pixel_std

    def decode(self, code: Tensor) -> Tensor:
        """Images (in the data's normalisation) decoded from codes: the sigmoid of the decoder's logits."""
        return self.to_data(torch.sigmoid(self.decoder(code)))

    def representation(self, images: Tensor) -> Tensor:
        """The code of clean images that the linear probe classifies."""
        raise NotImplementedError

    def objective(self, images: Tensor, training: bool) -> dict[str, Tensor]:
        """The batch's terms (per image, averaged over the batch): "loss" is logged as the headline and
        minimised, unless an "objective" (a weighted loss) is given: that is minimised then."""
        raise NotImplementedError

    # --- training ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        return self.optimizer(self.parameters(), lr=self.lr)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.objective(batch["image"], training=True)
        minimised = terms.get("objective", terms["loss"])
        self.track_finite("loss", minimised)
        if self.logs_this_step:  # logging every step would cost time for values Lightning does not write
            for name, value in terms.items():
                self.log(f"train/{name}", value.detach(), prog_bar=name == "loss")
        return minimised

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """The same terms on the held-out split (clean inputs), averaged over the epoch."""
        terms = self.objective(batch["image"], training=False)
        for name, value in terms.items():
            self.log(f"val/{name}", value, batch_size=batch["image"].size(0), sync_dist=True, prog_bar=name == "loss")

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:  # fitted on bare loaders: no held-out images to show
            return
        test = datamodule.test_set
        count = min(self.num_examples, len(test))
        indices = torch.linspace(0, len(test) - 1, count).long().tolist()  # spread over the classes
        self.examples = torch.stack([test[i]["image"] for i in indices]).to(self.device)

    # --- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_dataset(self, dataset: Dataset, batch_size: int, num_workers: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """(codes, flattened images, labels) of a whole split, in eval mode."""
        codes, pixels, labels = [], [], []
        with evaluating(self):
            for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
                images = batch["image"].to(self.device)
                codes.append(self.representation(images).cpu())
                pixels.append(images.flatten(1).cpu())
                labels.append(torch.as_tensor(batch["label"]).long())
        return torch.cat(codes), torch.cat(pixels), torch.cat(labels)

    def evaluation_scores(self, evaluator, datamodule) -> dict[str, float]:
        """The lecture's use of the code as a representation: a linear classifier (multinomial logistic
        regression, `linear_probe`) fitted on the codes of the training split, its accuracy on the reference
        split (the test split by default): `probe_accuracy`; the same probe on raw pixels for comparison:
        `probe_accuracy_pixels`. Data without labels gets no probe. Training splits larger than
        PROBE_MAX_TRAIN images are represented by a fixed random subset of that size."""
        if not datamodule.spec.num_classes:
            return {}
        workers = getattr(datamodule, "num_workers", 0)
        train_split = datamodule.build("train")
        if len(train_split) > PROBE_MAX_TRAIN:
            chosen = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(0))[:PROBE_MAX_TRAIN]
            train_split = Subset(train_split, chosen.tolist())
        train = self.encode_dataset(train_split, evaluator.batch_size, workers)
        test = self.encode_dataset(datamodule.build(evaluator.reference_split), evaluator.batch_size, workers)
        keep_train, keep_test = train[2] >= 0, test[2] >= 0  # -1: unlabelled
        if not keep_train.any() or not keep_test.any():
            return {}
        (codes, pixels, labels), (test_codes, test_pixels, test_labels) = (
            [t[keep_train] for t in train], [t[keep_test] for t in test])
        return {"probe_accuracy": linear_probe(codes, labels, test_codes, test_labels),
                "probe_accuracy_pixels": linear_probe(pixels, labels, test_pixels, test_labels)}


class Autoencoder(ImageCoder):
    """A deterministic autoencoder: code = encoder(x~) (or its sigmoid), x^ = decoder(code), x~ the (possibly
    corrupted) input; loss = reconstruction(x^, x) + sparsity_weight * sum_j KL(rho || rho_hat_j)."""

    no_samples_reason = ("an autoencoder has no prior over its codes to draw new images from. Train a variational "
                         "autoencoder to sample (gan-train model=vae); gan-eval reports this model's linear-probe "
                         "accuracy on its codes (probe_accuracy).")

    def __init__(self, encoder: Callable[..., nn.Module], decoder: Callable[..., nn.Module],
                 optimizer: Callable[..., Optimizer], code_dim: PositiveInt = 32, code_activation: str = "linear",
                 reconstruction: str = "cross_entropy",
                 sparsity_target: float = 0.05, sparsity_weight: float = 0.0, corruption: str = "none",
                 corruption_level: float = 0.25, lr: PositiveFloat = 1e-3, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.5,), num_examples: PositiveInt = 10) -> None:
        if reconstruction not in RECONSTRUCTIONS:
            raise UserError(f"model.reconstruction={reconstruction!r}: choose one of {', '.join(RECONSTRUCTIONS)}.")
        if not 0 < sparsity_target < 1:
            raise UserError(f"model.sparsity_target={sparsity_target}: the target mean activation rho of the code "
                            "units is a probability strictly between 0 and 1, e.g. model.sparsity_target=0.05.")
        if sparsity_weight < 0:
            raise UserError(f"model.sparsity_weight={sparsity_weight}: give beta >= 0 (0 turns the penalty off).")
        if code_activation not in CODE_ACTIVATIONS:
            raise UserError(f"model.code_activation={code_activation!r}: choose one of {', '.join(CODE_ACTIVATIONS)}.")
        if sparsity_weight and code_activation != "sigmoid":
            raise UserError(f"model.sparsity_weight={sparsity_weight} asks for a mean activation rho of the code "
                            "units, which needs units with activations in (0, 1): add model.code_activation=sigmoid "
                            f"(the code is {code_activation} now), or set model.sparsity_weight=0.")
        if corruption not in CORRUPTIONS:
            raise UserError(f"model.corruption={corruption!r} is not a corruption this model knows: choose one of "
                            f"{', '.join(CORRUPTIONS)} (with model.corruption_level=...).")
        if corruption == "masking" and not 0 <= corruption_level < 1:
            raise UserError(f"model.corruption_level={corruption_level}: with masking it is the share of pixels set "
                            "to black, in [0, 1), e.g. 0.25.")
        if corruption == "gaussian" and corruption_level < 0:
            raise UserError(f"model.corruption_level={corruption_level}: with gaussian it is the noise's standard "
                            "deviation (in units of the [0, 1] pixel range), 0 or more, e.g. 0.3.")
        mean, std = [float(v) for v in mean], [float(v) for v in std]  # plain lists: weights_only checkpoints
        super().__init__(encoder, decoder, code_dim, code_dim, mean, std, optimizer, lr, num_examples)
        self.save_hyperparameters(ignore=["encoder", "decoder", "optimizer"])
        self.reconstruction, self.code_activation = reconstruction, code_activation
        self.sparsity_target, self.sparsity_weight = float(sparsity_target), float(sparsity_weight)
        self.corruption, self.corruption_level = corruption, float(corruption_level)

    def encode(self, images: Tensor) -> Tensor:
        """The code of normalised images (in (0, 1) with code_activation=sigmoid)."""
        code = self.encoder(images)
        return torch.sigmoid(code) if self.code_activation == "sigmoid" else code

    def representation(self, images: Tensor) -> Tensor:
        return self.encode(images)

    def corrupt(self, images: Tensor) -> Tensor:
        """The encoder's input during training: the images under the configured corruption."""
        if self.corruption == "none":
            return images
        return self.to_data(corrupt(self.to_unit(images), self.corruption, self.corruption_level))

    def objective(self, images: Tensor, training: bool) -> dict[str, Tensor]:
        code = self.encode(self.corrupt(images) if training else images)
        logits = self.decoder(code)
        clean = self.to_unit(images)  # the target is always the clean image
        if self.reconstruction == "cross_entropy":
            reconstruction = bernoulli_nll(logits, clean).mean()
        else:
            reconstruction = squared_error(torch.sigmoid(logits), clean).mean()
        terms = {"reconstruction": reconstruction}
        if self.code_activation == "sigmoid":
            terms["mean_activation"] = code.mean().detach()
        loss = reconstruction
        if self.sparsity_weight:
            terms["sparsity"] = sparsity_penalty(code, self.sparsity_target)
            loss = loss + self.sparsity_weight * terms["sparsity"]
        return {"loss": loss, **terms}

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """Held-out images: the input row, the corrupted row (denoising only) and the reconstruction row."""
        if self.examples is None:
            return {}
        with evaluating(self), fixed_randomness(self.device):
            corrupted = self.corrupt(self.examples)
            rows = [self.examples] + ([corrupted] if self.corruption != "none" else [])
            rows.append(self.decode(self.encode(corrupted)))
        return {"reconstructions": (torch.cat(rows), len(self.examples))}
