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
from hydra.utils import instantiate
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from gan_cli.config.ranges import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.models.contract import Translator
from gan_cli.nets.image_pool import ImagePool
from gan_cli.nets.norm import init_weights_
from gan_cli.nets.schedules import LinearDecay
from gan_cli.rank_local import every_rank, this_ranks

INFERENCE_MODES = ("eval", "paper")


class TranslationModel(AdversarialModule, Translator):
    """Base of the translation models.

    Subclasses build their networks, name their generators in `GENERATORS` (direction -> attribute), write
    their own `training_step` (with `discriminator_loss` for the reference's halved D loss) and implement
    `example_rows` for the logged grid. Those with pools of past translations name them in `image_pools`,
    which checkpoints keep.
    """

    GENERATORS: dict[str, str] = {}

    def __init__(self, loss: AdversarialLoss, optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4,
                 lr_constant_epochs: NonNegativeInt = 100, lr_decay_epochs: NonNegativeInt = 100,
                 d_loss_weight: NonNegativeFloat = 0.5, init: str = "normal", init_gain: float = 0.02,
                 inference: str = "eval", num_examples: PositiveInt = 4) -> None:
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

    def discriminator_loss(self, critic: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The reference code's D loss, d_loss_weight * (real term + fake term) (halved: D learns more slowly
        than G), plus the objective's penalty and the tricks' terms; and the unweighted terms for logging."""
        terms, _, _ = self.discriminator_terms(critic, real, fake.detach())
        extra = [value for name, value in terms.items() if name not in ("real", "fake")]
        total = self.d_loss_weight * (terms["real"] + terms["fake"]) + sum(extra)
        return total, terms

    # --- resume: the pools are part of the training state, one per DDP rank --------------------------
    def image_pools(self) -> dict[str, ImagePool]:
        """The pools of past translations by name (e.g. fake_B): none by default."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.image_pools():
            checkpoint["gan_cli"]["pools"] = every_rank({name: pool.state_dict()
                                                         for name, pool in self.image_pools().items()})

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        pools = checkpoint.get("gan_cli", {}).get("pools")
        if pools:
            pools = this_ranks(pools) if isinstance(pools, list) else pools  # a dict: a checkpoint of before
            for name, pool in self.image_pools().items():
                pool.load_state_dict(pools[name])

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

    def translator(self, direction: str) -> nn.Module:
        """The network that translates `direction`: its generator, or what samples in its place (tricks=[ema])."""
        if direction not in self.GENERATORS:
            raise UserError(f"This {type(self).__name__} translates {' and '.join(self.GENERATORS)}, not {direction}.")
        return self.inference_generator(getattr(self, self.GENERATORS[direction]))

    @classmethod
    def translator_from(cls, model_config: dict, state_dict: dict, direction: str) -> nn.Module:
        """The generator named for `direction` in GENERATORS, built from the model config's `generator` node."""
        prefix = f"{cls.GENERATORS[direction]}."
        generator = instantiate(model_config["generator"])()
        generator.load_state_dict({k.removeprefix(prefix): v for k, v in state_dict.items() if k.startswith(prefix)})
        return generator

    def translate(self, images: Tensor, direction: str = "AtoB") -> Tensor:
        """Translate normalised images of any size with the generator for `direction`."""
        return translate_images(self.translator(direction), images, self.inference)


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
