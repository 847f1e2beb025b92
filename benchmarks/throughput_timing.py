"""How benchmarks/throughput.py times a window fairly: the same steady state on both sides, the device
waited for, start-up's garbage collected before the window, and the same malloc behaviour whatever ran before."""

from __future__ import annotations

import ctypes
import gc
import sys
import time

import torch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def steady_allocator() -> None:
    """Give both sides the same memory allocator behaviour, whatever ran before them in this process.

    glibc's malloc adapts its thresholds to past frees: returned memory (large blocks, the top of the
    heap) goes back to the kernel, and memory taken again costs page faults that zero it. Which blocks
    are returned depends on the process's history, so the same loop can fault many times a batch or not
    at all: pix2pix-256's plain loop ran faster right after a gan-train run than after another plain run,
    and the alternating repeats turned that into a bias (measured figures: benchmarks/RESULTS.md#make-bench).
    Fixed thresholds (blocks up to 32 MiB from the heap, which is never trimmed) end that: after the first
    measurement neither side faults. No-op where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018  (musl and others have no mallopt)
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def settle(device: str) -> None:
    """Before a timed window: wait for the device and pay start-up's garbage-collection debt.

    Building a run leaves many tracked Python objects (Hydra, Lightning, torch, TensorBoard); the first full
    (generation-2) collection after that takes long enough to matter (measured figures:
    benchmarks/RESULTS.md#make-bench) and would otherwise fall at a random batch of whichever window happens
    to trigger it. Both sides collect here, so both windows start with the same clean heap; the collections
    that the loops' own allocations cause are still timed.
    """
    sync(device)
    gc.collect()


# --- a. gan-train's timed window --------------------------------------------------------------------
def make_timer(warmup: int, timed: int, device: str, threads: int):
    import pytorch_lightning as pl

    class WindowTimer(pl.Callback):
        """Wall time from the start of batch `warmup` to the start of batch `warmup + timed`."""

        def __init__(self) -> None:
            self.start = self.end = None
            self.threads_seen: set[int] = set()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == warmup:
                settle(device)
                self.start = time.perf_counter()
            elif batch_idx == warmup + timed:
                sync(device)
                self.end = time.perf_counter()
            if warmup <= batch_idx <= warmup + timed:
                self.threads_seen.add(torch.get_num_threads())

        @property
        def seconds(self) -> float:
            if self.start is None or self.end is None:
                raise RuntimeError("the timed window was not reached: fewer batches ran than expected")
            return self.end - self.start

    return WindowTimer()
