"""The training engine: how a run's training step is executed, never what it computes. `engine=eager` (the
default) changes nothing; `engine=fast` (conf/engine/fast.yaml) compiles the networks (CUDA graphs on a GPU
through torch.compile's reduce-overhead mode), keeps convolution weights channels-last so bf16 autocast reaches
the convolutions, uses the fused Adam kernels on a GPU and keeps in-memory datasets on the GPU.

A model's training step and its checkpoints are the same under every engine: `nn.Module.compile` compiles a
network in place (its state-dict keys do not change), and memory formats do not change values. A model that
cannot run compiled says so in `compile_refusal` (gan_cli.models.base.GenerativeModule).

`engine.capture_step` goes further on a GPU: the whole update of a step, every optimizer step included, is captured
once in a CUDA graph and replayed (gan_cli.models.step_capture). It is built for gan, dcgan, cgan, sngan,
infogan, ssgan, lapgan, text_cgan, stackgan, pix2pix and cyclegan without tricks; other models say why not in
`capture_refusal`.
"""

from __future__ import annotations

import functools
import inspect
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
        there: no per-batch copy from the host;
    capture_step: the whole update of a training step captured in one CUDA graph and replayed, with capturable
        optimizers: True (a run that cannot is refused with the reason), "gpu" (where it can, on a GPU; other runs
        go on without it), False. It replaces compile's per-network graphs: the networks are not compiled then.
    """

    def __init__(self, compile: bool | Literal["gpu"] = False,
                 compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
                 = "default", channels_last: bool = False,
                 matmul_precision: Literal["highest", "high", "medium"] = "highest", fused_optimizer: bool = False,
                 data_on_device: bool = False, capture_step: bool | Literal["gpu"] = False) -> None:
        for name, value in (("compile", compile), ("capture_step", capture_step)):
            if value not in COMPILE_CHOICES:
                raise UserError(f"Invalid config value engine.{name}={value}: give true (always), false (never) or gpu "
                                "(only when training on a GPU).")
        self.compile, self.compile_mode, self.channels_last = compile, compile_mode, channels_last
        self.matmul_precision, self.fused_optimizer, self.data_on_device = matmul_precision, fused_optimizer, data_on_device
        self.capture_step = capture_step
        self.compiled = False  # whether this run's networks were compiled
        self.captured = False  # whether this run's updates are replayed from CUDA graphs
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
        if self.capture_step is True or (self.capture_step == "gpu" and device.type == "cuda"):
            reason = capture_refusal(pl_module, device, trainer)
            if self.capture_step is True and reason:
                raise UserError(f"{model_name(type(pl_module))} cannot be trained with engine.capture_step: {reason} "
                                "Train it with engine.capture_step=false (engine.compile still applies), or "
                                "engine.capture_step=gpu to capture only where it can on a GPU.")
            if not reason:
                capture_updates(pl_module, device)
                self.captured = True
                return  # the whole update is one graph: no per-network graphs inside it
            log.info("engine.capture_step=gpu: %s trains without it (%s)", model_name(type(pl_module)), reason)
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


def capture_refusal(module: pl.LightningModule, device: torch.device, trainer) -> str:
    """Why `module`'s updates cannot be replayed from CUDA graphs in this run, or "" if they can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA GPU, and this run trains on {device.type}."
    if str(trainer.precision) == "16-mixed":
        return ("fp16's gradient scaler decides on the host whether each step is skipped; train with "
                "trainer.precision=bf16-mixed or 32-true.")
    if trainer.world_size > 1:
        return "the gradient all-reduce across several GPUs is not captured; train on one GPU to capture."
    return getattr(module, "capture_refusal", lambda: "it is not a gan-cli model.")()


def capture_updates(module: pl.LightningModule, device: torch.device) -> None:
    """Replay `module`'s updates from CUDA graphs, with capturable optimizers."""
    from gan_cli.models.step_capture import CapturedStep

    make = getattr(module, "optimizer", None)
    if isinstance(make, functools.partial) and "capturable" in inspect.signature(make.func).parameters:
        module.optimizer = functools.partial(make, capturable=True)
    module.step_capture = CapturedStep(device)
    log.info("The training step's updates are captured in CUDA graphs and replayed (engine.capture_step)")


def fuse_optimizer(module: pl.LightningModule) -> None:
    """Make the model's optimizer factory (its config's `model.optimizer` partial) build fused optimizers."""
    make = getattr(module, "optimizer", None)
    if isinstance(make, functools.partial) and make.func in FUSABLE and "foreach" not in make.keywords:
        module.optimizer = functools.partial(make, fused=True)
