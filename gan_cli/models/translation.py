"""What the image-to-image models (pix2pix, CycleGAN) share: Adam for all generators and for all
discriminators, the learning rate held constant and then decayed linearly to zero, the halved
discriminator loss of the reference code, fixed example inputs for the logged grids, and translating
images of any size.

Models translate batch["A"] into batch["B"]; the data's `direction` setting decides which half of a
dataset is "A".
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.nets.norm import init_weights_
from gan_cli.nets.schedules import LinearDecay

INFERENCE_MODES = ("eval", "paper")


class TranslationModel(AdversarialModule):
    """Base of the translation models.

    Subclasses build their networks, implement `example_rows`, and name their generators in `GENERATORS`
    (direction -> attribute), which gan-translate uses to load only the generator it needs. They either
    implement the hooks of the unpaired training step below (`generator_terms`, `translations`,
    `discriminator_losses`) or their own `training_step`.
    """

    GENERATORS: dict[str, str] = {}

    def __init__(self, loss: AdversarialLoss, optimizer: Callable[..., Optimizer], lr: float = 2e-4,
                 lr_constant_epochs: int = 100, lr_decay_epochs: int = 100, d_loss_weight: float = 0.5,
                 init: str = "normal", init_gain: float = 0.02, inference: str = "eval",
                 num_examples: int = 4) -> None:
        super().__init__(loss)
        if inference not in INFERENCE_MODES:
            raise UserError(f"model.inference={inference!r}: choose one of {', '.join(INFERENCE_MODES)}.")
        self.optimizer, self.lr = optimizer, lr
        self.lr_schedule = LinearDecay(lr_constant_epochs, lr_decay_epochs)
        self.d_loss_weight = d_loss_weight
        self.init, self.init_gain = init, init_gain
        self.inference, self.num_examples = inference, num_examples

    # --- networks ----------------------------------------------------------------------------------
    def generators(self) -> list[nn.Module]:
        return [getattr(self, name) for name in dict.fromkeys(self.GENERATORS.values())]

    def init_weights(self) -> None:
        """Initialise every network as the reference code does (N(0, 0.02) by default)."""
        for net in [*self.generators(), *self.discriminators()]:
            init_weights_(net, self.init, self.init_gain)

    # --- optimisation ------------------------------------------------------------------------------
    def configure_optimizers(self):
        params_g = itertools.chain(*(g.parameters() for g in self.generators()))
        params_d = itertools.chain(*(d.parameters() for d in self.discriminators()))
        opt_g, opt_d = self.optimizer(params_g, lr=self.lr), self.optimizer(params_d, lr=self.lr)
        schedules = [LambdaLR(opt, self.lr_schedule) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], schedules

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.step_epoch_schedules()

    def training_step(self, batch: dict, batch_idx: int) -> None:
        """The generators first (the discriminators frozen), then the discriminators on the translations, as
        the reference code of CycleGAN. On steps without a generator update (k > 1 discriminator updates per
        generator update, e.g. loss=wgan_gp) the translations are drawn without gradients.

        Hooks: `generator_terms(real_A, real_B)` -> (the generators' loss terms by logged name, *translations),
        `translations(real_A, real_B)` -> the same translations, and `discriminator_losses`."""
        real_A, real_B = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        details = self.should_log_details()
        logs: dict[str, Tensor] = {}
        if self.generator_due():
            with self.toggled_optimizer(opt_g):
                terms, *fakes = self.generator_terms(real_A, real_B)
                logs |= self.optimise(opt_g, sum(terms.values()), "g_loss", self.generators(), details)
            self.generator_updated()
            logs |= {f"train/{name}": value.detach() for name, value in terms.items()}
        else:
            with torch.no_grad():
                fakes = self.translations(real_A, real_B)
        d_losses = self.discriminator_losses(real_A, real_B, *fakes)
        logs |= self.optimise(opt_d, sum(d_losses.values()), "d_loss", self.discriminators(), details)
        self.discriminator_updated(*self.discriminators())
        if details:
            self.log_losses(logs | {f"train/{name}": value.detach() for name, value in d_losses.items()})

    def translations(self, real_A: Tensor, real_B: Tensor) -> tuple[Tensor, ...]:
        """The translations of generator_terms, for a step without a generator update."""
        raise NotImplementedError

    def discriminator_losses(self, real_A: Tensor, real_B: Tensor, *fakes: Tensor) -> dict[str, Tensor]:
        """Each discriminator's loss (see discriminator_loss) by its logged name, for the translations `fakes`."""
        raise NotImplementedError

    def discriminator_loss(self, critic: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The reference code's D loss, d_loss_weight * (real term + fake term) (halved: D learns more slowly
        than G), plus the objective's penalty and the tricks' terms; and the unweighted terms for logging."""
        terms, _, _ = self.discriminator_terms(critic, real, fake.detach())
        extra = [value for name, value in terms.items() if name not in ("real", "fake")]
        total = self.d_loss_weight * (terms["real"] + terms["fake"]) + sum(extra)
        return total, terms

    # --- data and pictures -------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        examples = self.trainer.datamodule.examples(self.num_examples)
        self.register_buffer("example_A", examples["A"].to(self.device), persistent=False)
        self.register_buffer("example_B", examples["B"].to(self.device), persistent=False)

    def example_rows(self) -> list[Tensor]:
        """Rows of images (each a batch of num_examples) for the logged grid."""
        raise NotImplementedError

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        if getattr(self, "example_A", None) is None:
            return {}
        rows = self.example_rows()
        return {"translations": (torch.cat(rows), rows[0].size(0))}

    def translate(self, images: Tensor, direction: str = "AtoB") -> Tensor:
        """Translate normalised images of any size with the generator for `direction`."""
        if direction not in self.GENERATORS:
            raise UserError(f"This {type(self).__name__} translates {' and '.join(self.GENERATORS)}, not {direction}.")
        generator = self.inference_generator(getattr(self, self.GENERATORS[direction]))
        return translate_images(generator, images, self.inference)


@contextmanager
def generator_inference(generator: nn.Module, mode: str) -> Iterator[None]:
    """Run `generator` for inference. "eval": the usual eval mode. "paper": as Isola et al. (pix2pix) do at
    test time, dropout stays on and batch norm uses the statistics of the test batch (its running
    statistics are left untouched)."""
    was_training = generator.training
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    generator.train(mode == "paper")
    for m in norms:
        m.momentum = 0.0  # batch statistics are used, and the running ones stay as they were
    try:
        with torch.no_grad():
            yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        generator.train(was_training)


def translate_images(generator: nn.Module, images: Tensor, mode: str = "eval") -> Tensor:
    """Run `generator` on images of any size: reflection-padded up to the size its architecture needs
    (a multiple of `generator.size_multiple`) and cropped back afterwards."""
    multiple = getattr(generator, "size_multiple", 1)
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    padded = images
    if pad_h or pad_w:
        mode_pad = "reflect" if pad_h < height and pad_w < width else "replicate"
        padded = F.pad(images, (0, pad_w, 0, pad_h), mode=mode_pad)
    with generator_inference(generator, mode):
        out = generator(padded)
    return out[..., :height, :width]
