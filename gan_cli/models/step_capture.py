"""The whole weight update of a training step (every optimizer step in it, D's and G's) captured once in a CUDA
graph and replayed for each batch: `engine.capture_step` (gan_cli.callbacks.engine). Replaying one graph costs one
launch where the eager step costs hundreds (forward, backward, optimizer kernels, and Lightning's wrappers around
each), which is what holds small networks back on a GPU.

A model opts in by running its update through `GenerativeModule.run_update(update, *inputs)`: `update` takes the
batch's tensors and returns what the step logs. Replaying reuses the captured memory, so:

- the batch is copied into the graph's own input tensors, and what a replay returns is overwritten by the next;
- everything the update computes on the device is replayed (dropout and noise draw fresh random numbers, the
  optimizers advance their moments and step counts, losses are checked for NaN into device tensors), but what it
  does on the host happens only while it is captured. The host counters it advances (Lightning's optimizer-step
  count, the model's `captured_counters`, e.g. the discriminator's update count) are measured during the capture
  and advanced by as much after each replay;
- a graph is captured per shape of the inputs, per `capture_key()` of the model (which updates this step makes:
  with k D updates per G update there are two) and per learning rate, each after `warmup` eager calls on a side
  stream (cuDNN's autotuner and the optimizers' lazy state must not run during a capture);
- the values the log steps show are computed in every replay (the graph cannot branch on the host's log step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from pytorch_lightning import LightningModule
from torch import Tensor

from gan_cli.lightning_state import count_optimizer_steps, optimizer_steps

Update = Callable[..., dict[str, Tensor]]
#: a gan_cli.models.base.GenerativeModule (that module imports this one)
Model = LightningModule


@dataclass
class Captured:
    """One captured update: the graph, its input tensors, its outputs, and the host counters one step advances."""
    graph: torch.cuda.CUDAGraph
    inputs: tuple[Tensor | None, ...]
    outputs: dict[str, Tensor]
    host_advance: dict[str, int]
    learning_rates: tuple[float, ...]


class CapturedStep:
    """Runs a model's updates from CUDA graphs (see the module docstring). `step_number` is the batch count as a
    device tensor, set before each update, for what the update records per step (the first non-finite step)."""

    def __init__(self, device: torch.device, warmup: int = 3) -> None:
        self.device, self.warmup = device, warmup
        self.step_number = torch.zeros((), dtype=torch.long, device=device)
        self.graphs: dict[tuple, Captured] = {}
        self.eager_calls: dict[tuple, int] = {}  # warm-up calls made per key

    def run(self, model: Model, update: Update, inputs: tuple[Tensor | None, ...]) -> dict[str, Tensor]:
        self.step_number.fill_(model.batches_seen)
        key = (model.capture_key(), tuple(None if t is None else (tuple(t.shape), t.dtype) for t in inputs))
        rates = learning_rates(model)
        captured = self.graphs.get(key)
        if captured is not None and captured.learning_rates == rates:
            return self.replay(model, captured, inputs)
        if self.eager_calls.get(key, 0) < self.warmup:
            self.eager_calls[key] = self.eager_calls.get(key, 0) + 1
            return on_side_stream(update, inputs)
        self.graphs.pop(key, None)  # a new learning rate: the old graph's memory goes before the new one is captured
        self.graphs[key] = captured = self.capture(model, update, inputs, rates)
        captured.graph.replay()  # the capture recorded the step without running it; its host effects happened
        return dict(captured.outputs)

    def capture(self, model: Model, update: Update, inputs: tuple[Tensor | None, ...],
                rates: tuple[float, ...]) -> Captured:
        static = tuple(None if t is None else t.clone() for t in inputs)
        before = host_counters(model)
        logs_this_step, model.logs_this_step = model.logs_this_step, True  # every replay computes the log values
        graph = torch.cuda.CUDAGraph()
        try:
            # autocast's weight cache must be off in a capture (bf16-mixed wraps the training step in autocast)
            with torch.autocast(self.device.type, dtype=torch.get_autocast_dtype(self.device.type),
                                enabled=torch.is_autocast_enabled(self.device.type), cache_enabled=False), \
                    torch.cuda.graph(graph, capture_error_mode="thread_local"):  # loader threads may pin memory
                outputs = update(*static)
        finally:
            model.logs_this_step = logs_this_step
        advance = {name: value - before[name] for name, value in host_counters(model).items()}
        return Captured(graph, static, outputs, advance, rates)

    def replay(self, model: Model, captured: Captured, inputs: tuple[Tensor | None, ...]
               ) -> dict[str, Tensor]:
        for static, given in zip(captured.inputs, inputs):
            if static is not None:
                static.copy_(given, non_blocking=True)
        captured.graph.replay()
        advance_host_counters(model, captured.host_advance)
        return dict(captured.outputs)  # the caller may add to its logs


def on_side_stream(update: Update, inputs: tuple[Tensor | None, ...]) -> dict[str, Tensor]:
    """An eager call of `update` on a side stream, as CUDA's graph capture wants its warm-up calls made."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        outputs = update(*inputs)
    torch.cuda.current_stream().wait_stream(stream)
    return outputs


def learning_rates(model: Model) -> tuple[float, ...]:
    """The learning rate of every parameter group: a capture holds them as constants."""
    return tuple(group["lr"] for optimizer in model.trainer.optimizers for group in optimizer.param_groups)


def host_counters(model: Model) -> dict[str, int]:
    """The host counters an update advances: Lightning's optimizer steps and the model's `captured_counters`."""
    return {"optimizer_steps": optimizer_steps(model.trainer)} | {
        name: getattr(model, name) for name in model.captured_counters}


def advance_host_counters(model: Model, advance: dict[str, int]) -> None:
    for name, steps in advance.items():
        if name == "optimizer_steps":
            count_optimizer_steps(model.trainer, steps)
        else:
            setattr(model, name, getattr(model, name) + steps)
