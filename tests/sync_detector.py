"""Finds host-device synchronisations in a training step on a machine without a GPU.

On a GPU, reading a value of a device tensor on the host (`.item()`, `bool(t)`, `if t > 0:`, `.tolist()`,
`int(t)`, `torch.nonzero`, indexing with a boolean mask, `.cpu()`) makes the host wait for the GPU.
`torch.cuda.set_sync_debug_mode("error")` catches them there; here every tensor is on the CPU, so this mode
follows which tensors would stay on the host on a GPU as well: those made by factory functions without a device
(torch.rand(()) as the image pool draws), and what is computed from them alone. Any other tensor (weights,
batches, noise drawn with `device=`, losses, gradients, optimizer state) would live on the GPU, and reading one
on the host is recorded with its stack.
"""

from __future__ import annotations

import traceback
import weakref

import pytorch_lightning as pl
import torch
from torch.overrides import TorchFunctionMode

READS = {"item", "__bool__", "tolist", "__int__", "__float__", "__index__", "nonzero", "numpy", "cpu",
         "masked_select", "unique", "__array__"}
FACTORIES = {"rand", "randn", "randint", "randperm", "tensor", "as_tensor", "zeros", "ones", "empty", "full", "arange",
             "linspace", "normal"}


class HostReads(TorchFunctionMode):
    """Records (op name, stack) for each host read of a tensor that would live on a GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.host = weakref.WeakSet()  # tensors that stay on the host on a GPU too
        self.found: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if name in READS or (name == "__getitem__" and any(t.dtype == torch.bool for t in tensors[1:])):
            if tensors and tensors[0] not in self.host:
                self.found.append((name, "".join(traceback.format_stack(limit=14)[:-1])))
        result = func(*args, **kwargs)
        from_host = name in FACTORIES and kwargs.get("device") in (None, "cpu") and not tensors
        moved = name in ("to", "cuda", "type_as")  # on a GPU these may put a host tensor on the device
        derived = bool(tensors) and all(t in self.host for t in tensors)
        if isinstance(result, torch.Tensor) and not moved and (from_host or derived):
            self.host.add(result)
        return result


def host_reads_beside(optimizers: list[torch.optim.Optimizer]) -> HostReads:
    """HostReads that knows the optimizers' step counts stay on the host (Adam's, unless fused or capturable)."""
    mode = HostReads()
    for optimizer in optimizers:
        on_device = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
        for state in optimizer.state.values():
            if torch.is_tensor(state.get("step")) and not on_device:
                mode.host.add(state["step"])
    return mode


class HostReadsBetweenLogSteps(pl.Callback):
    """Puts each training batch that is not a log step (from the callbacks' on_train_batch_start to their
    on_train_batch_end: the model's hooks, its training step, Lightning's optimizer calls) under HostReads. Put it
    first among the callbacks."""

    def __init__(self) -> None:
        self.mode: HostReads | None = None
        self.found: list[tuple[str, str]] = []
        self.checked_batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        from gan_cli.lightning_state import logs_this_step

        if not logs_this_step(trainer):
            self.mode = host_reads_beside(trainer.optimizers)
            self.mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.found += self.mode.found
            self.mode, self.checked_batches = None, self.checked_batches + 1

    def sites(self) -> str:
        """Each distinct place a host read was found, with its stack."""
        return "\n\n".join(sorted({f"{name} at\n{stack}" for name, stack in self.found}))
