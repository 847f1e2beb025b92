"""Test-only pieces: callbacks added to a run from the command line (+callbacks.NAME._target_=tests.helpers.X),
and stand-in models and networks for the metrics tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from gan_cli.errors import UserError
from gan_cli.models.contract import Sampler


def refusal(call) -> UserError:
    """The UserError that `call()` stops with: raised before anything is built (a value out of its declared
    range) or by a constructor, where Hydra wraps it in an InstantiationException."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - unwrapped below, re-raised when it is no refusal
        cause = error
        while not isinstance(cause, UserError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, UserError):
            return cause
        raise
    raise AssertionError("nothing was refused")


class PoisonWeights(pl.Callback):
    """Simulates a diverging run: at training batch `at_batch` the generator's weights become NaN."""

    def __init__(self, at_batch: int) -> None:
        self.at_batch = at_batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.batches_seen == self.at_batch:
            with torch.no_grad():
                for param in pl_module.generator.parameters():
                    param.fill_(float("nan"))


class PoisonBatchNorm(pl.Callback):
    """Simulates statistics that overflow while every loss stays finite: at training batch `at_batch` the running
    variances of the discriminator's batch norms become infinite (D trains on batch statistics)."""

    def __init__(self, at_batch: int) -> None:
        self.at_batch = at_batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.batches_seen == self.at_batch:
            for module in pl_module.discriminator.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_var.fill_(float("inf"))


class SlowDown(pl.Callback):
    """Makes every batch take at least `seconds`, so a test can kill a run in the middle."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)


class IntensityClassifier(torch.nn.Module):
    """A 'classifier' for tests: an image of constant grey level label/10 is recognised as that label."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("levels", torch.arange(num_classes) / num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.flatten(1).mean(dim=1, keepdim=True)
        return -100 * (mean - self.levels) ** 2


class ConstantImages(torch.nn.Module, Sampler):
    """A stand-in generator: images of grey level label/10 (in [-1, 1] data space), or `images` if given;
    `wrong` maps a requested label to the one actually drawn."""

    def __init__(self, num_classes: int = 10, size: int = 8, images: torch.Tensor | None = None,
                 wrong: dict[int, int] | None = None) -> None:
        super().__init__()
        self.num_classes, self.size, self.images, self.wrong = num_classes, size, images, wrong or {}
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def sample(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.images is not None:
            return self.images[torch.randint(len(self.images), (n,))]
        drawn = torch.tensor([self.wrong.get(int(label), int(label)) for label in labels])
        level = (drawn.float() / self.num_classes).view(-1, 1, 1, 1)
        return (level.expand(n, 1, self.size, self.size) - 0.5) / 0.5


class RealDigits(torch.nn.Module, Sampler):
    """A stand-in generator that 'draws' real held-out digits (data space) of the requested labels;
    `shift` hands out the digit of label + shift instead."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, shift: int = 0) -> None:
        super().__init__()
        self.images, self.labels, self.shift = images, labels, shift
        self.num_classes = int(labels.max()) + 1
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def sample(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return self.images[torch.randint(len(self.images), (n,))]
        picks = []
        for label in labels.tolist():
            rows = torch.nonzero(self.labels == (label + self.shift) % self.num_classes).flatten()
            picks.append(rows[torch.randint(len(rows), ())])
        return self.images[torch.stack(picks)]


def random_inception_weights(path: Path) -> Path:
    """A random-weight InceptionV3 state dict (He-initialised so that features vary with the input)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


class StopAfter(pl.Callback):
    """Ends the run after epoch `epoch` as if it had been killed there (its last.ckpt is that epoch's)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = trainer.current_epoch == self.epoch


def resumed_and_uninterrupted(tmp_path: Path, overrides: list[str]) -> tuple[dict, dict]:
    """Train `overrides` straight through, and again cut after epoch 0 then resumed from that last.ckpt; returns
    (uninterrupted, resumed) final checkpoints. An exact resume gives equal state_dicts."""
    from gan_cli.commands.train import train
    from tests.conftest import compose_train

    train(compose_train(tmp_path / "whole", overrides))
    train(compose_train(tmp_path / "cut", [*overrides, "+callbacks.stop._target_=tests.helpers.StopAfter",
                                           "+callbacks.stop.epoch=0"]))
    cut = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert torch.load(cut, weights_only=True)["epoch"] == 0
    train(compose_train(tmp_path / "resumed", [*overrides, f"ckpt_path={cut}"]))
    return tuple(torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
                 for run in ("whole", "resumed"))


def same_state(expected: dict, resumed: dict) -> bool:
    return expected.keys() == resumed.keys() and all(torch.equal(expected[k], resumed[k]) for k in expected)
