"""The training engine: how a run's training step is executed, never what it computes. `engine=eager` (the
default) changes nothing; `engine=fast` (conf/engine/fast.yaml) compiles the networks (CUDA graphs on a GPU
through torch.compile's reduce-overhead mode), keeps convolution weights channels-last so bf16 autocast reaches
the convolutions, uses the fused Adam kernels on a GPU and keeps in-memory datasets on the GPU.

A model's training step and its checkpoints are the same under every engine: `nn.Module.compile` compiles a
network in place (its state-dict keys do not change), and memory formats do not change values. A model that
cannot run compiled says so in `compile_refusal` (gan_cli.models.base.GenerativeModule).
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import pytorch_lightning as pl
import torch

from gan_cli.errors import UserError
from gan_cli.tricks.base import model_name

log = logging.getLogger(__name__)

#: optimizers with fused CUDA kernels (one launch for all parameters)
FUSABLE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)
COMPILE_CHOICES = (True, False, "gpu")


class Engine(pl.Callback):
    """Applies the engine settings to the model and data when fitting starts (before the optimizers are built and
    the model is moved to its device).

    compile: True compiles every network the training step calls (`model.networks()`), "gpu" only when training
        on a GPU (on a CPU compiling costs 20-30 s and gained nothing for these networks: benchmarks/RESULTS.md),
        False never;
    compile_mode: torch.compile's mode: "reduce-overhead" replays CUDA graphs on a GPU (and is "default" on a CPU);
    channels_last: 4-D weights in channels-last layout, so convolutions run in it (and in bf16 under autocast);
    matmul_precision: torch.set_float32_matmul_precision ("high" lets fp32 matmuls use TF32 on a GPU);
    fused_optimizer: Adam, AdamW and SGD with their fused kernels, on a GPU;
    data_on_device: in-memory datasets (mnist_5k, data=fake, ...) copied once to the training device and batched
        there: no per-batch copy from the host.
    """

    def __init__(self, compile: bool | Literal["gpu"] = False,
                 compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
                 = "default", channels_last: bool = False,
                 matmul_precision: Literal["highest", "high", "medium"] = "highest", fused_optimizer: bool = False,
                 data_on_device: bool = False) -> None:
        if compile not in COMPILE_CHOICES:
            raise UserError(f"Invalid config value engine.compile={compile}: give true (always), false (never) or gpu "
                            "(only when training on a GPU).")
        self.compile, self.compile_mode, self.channels_last = compile, compile_mode, channels_last
        self.matmul_precision, self.fused_optimizer, self.data_on_device = matmul_precision, fused_optimizer, data_on_device
        self.compiled = False  # whether this run's networks were compiled
        self._cuda_graphs = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        device = trainer.strategy.root_device
        torch.set_float32_matmul_precision(self.matmul_precision)
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.fused_optimizer and device.type == "cuda":
            fuse_optimizer(pl_module)
        if self.data_on_device and trainer.datamodule is not None:
            trainer.datamodule.data_device = device
        if self.compile is True or (self.compile == "gpu" and device.type == "cuda"):
            compile_networks(pl_module, self.compile_mode)
            self.compiled = True
            self._cuda_graphs = device.type == "cuda" and self.compile_mode == "reduce-overhead"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._cuda_graphs:  # a new step: the previous step's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()


def compile_networks(module: pl.LightningModule, mode: str) -> None:
    """Compile the networks `module`'s training step calls, in place, or refuse with the model's reason."""
    reason = getattr(module, "compile_refusal", lambda: "")()
    if reason:
        raise UserError(f"{model_name(type(module))} cannot be trained with engine.compile: {reason} Train it with "
                        "engine.compile=false (the rest of engine=fast still applies).")
    for network in module.networks():
        network.compile(mode=mode)
    log.info("Compiled %d networks (torch.compile mode=%s): the first steps take longer", len(module.networks()), mode)


def fuse_optimizer(module: pl.LightningModule) -> None:
    """Make the model's optimizer factory (its config's `model.optimizer` partial) build fused optimizers."""
    make = getattr(module, "optimizer", None)
    if isinstance(make, functools.partial) and make.func in FUSABLE and "foreach" not in make.keywords:
        module.optimizer = functools.partial(make, fused=True)
