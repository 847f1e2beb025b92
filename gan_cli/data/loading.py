"""How batches are served so that a run resumed from any checkpoint (at the end of an epoch or in the middle of
one, with or without DataLoader workers) reads exactly the batches of an uninterrupted run:

- the order of epoch e is a permutation drawn from (seed, e) alone (`EpochShuffle`; Lightning calls its
  `set_epoch` as it does DistributedSampler's), and an item's random choices (crops, flips, the caption drawn, an
  unpaired partner) come from a generator seeded with (seed, e, index) (`SeededItems`): nothing depends on which
  process or worker drew what before, and loading leaves the training step's random numbers alone; under DDP
  each rank reads its share of that permutation;
- torchdata's StatefulDataLoader counts how far into the epoch it is, and Lightning keeps that count in every
  checkpoint, so a resumed run goes on with the next batch;
- the seed is the run's `seed=`, or drawn once when there is none, and kept in checkpoints by the datamodule
  (`ResumableLoading`).
"""

from __future__ import annotations

import math
import os
import random
import warnings
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from gan_cli.errors import UserError
from gan_cli.lightning_state import epoch_in_progress
from gan_cli.rank_local import rank_and_world

# torchdata 0.11 calls a deprecated torch function on every loader it builds: not the user's business
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")


def mixed_seed(*values: int) -> int:
    """A 63-bit seed that depends on every one of `values` (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([v & 0xFFFFFFFFFFFFFFFF for v in values]).generate_state(1, np.uint64)[0] >> 1)


class EpochShuffle(DistributedSampler):
    """Keys (epoch, index) of a permutation of `size` items drawn from (seed, epoch) alone; in a DDP run, this
    rank's share of it (every `num_replicas`-th key, the permutation padded with its start to a whole number of
    shares, as DistributedSampler does).

    Its state (the epoch, and how many keys the current pass has given) is in the loader's, so a loader restored
    in the middle of an epoch goes on where it stopped. The permutation is drawn when the first key is asked for,
    after Lightning has set the epoch (Lightning creates the loader's iterator before it calls `set_epoch`, and
    a loader with workers asks for keys as soon as it is created: it is built knowing its first epoch).

    A DistributedSampler, so that Lightning uses it as it is under DDP: it would wrap any other sampler in one
    that shards a fixed list, losing the epoch and the position. DistributedSampler's own __init__ is not called:
    it wants a process group even outside DDP."""

    def __init__(self, size: int, seed: int, epoch: int = 0, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        default_rank, default_world = rank_and_world()
        self.num_replicas = default_world if num_replicas is None else num_replicas
        self.rank = default_rank if rank is None else rank
        self.size, self.seed, self.epoch = size, seed, epoch
        self.num_samples = math.ceil(size / self.num_replicas)  # keys for each rank
        self.total_size, self.shuffle, self.drop_last = self.num_samples * self.num_replicas, True, False
        self.given = 0  # keys given by the current pass
        self._resume_at = 0  # keys to skip at the start of the next pass (a restored position)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self._resume_at = self._resume_at, 0
        self.given = start
        return self._keys(start)

    def _keys(self, start: int) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(mixed_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        order = (order * math.ceil(self.total_size / self.size))[:self.total_size]
        share = order[self.rank::self.num_replicas]
        for self.given, index in enumerate(share[start:], start=start + 1):
            yield self.epoch, index

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "given": self.given}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["epoch"] < self.epoch:  # saved during an epoch that has ended since: this one starts afresh
            return
        # a complete pass was saved at the end of its epoch: the next pass is the next epoch's (a loader with
        # workers draws its first keys before Lightning sets the epoch)
        done = state["given"] >= self.num_samples
        self.epoch, self.given = state["epoch"] + done, 0 if done else state["given"]
        self._resume_at = self.given


class SeededItems(Dataset):
    """Item `index` of `items` for the key (epoch, index), drawn with torch's random generator seeded from
    (seed, epoch, index); the generator's state outside the item is left as it was."""

    def __init__(self, items: Dataset, seed: int) -> None:
        self.items, self.seed = items, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mixed_seed(self.seed, epoch, index))
            return self.items[index]


class WholeBatches(Dataset):
    """An in-memory dataset (`images`, `labels` tensors, deterministic) that a loader asks for a whole batch at a
    time (PyTorch's `__getitems__`): two indexing operations instead of fetching and stacking images one by one.
    With a `device` (engine.data_on_device) the tensors are copied there once and batches are indexed there."""

    def __init__(self, items: Dataset, device: torch.device | None = None) -> None:
        self.items, self.device = items, device
        self.images, self.labels = items.images, items.labels
        if device is not None:
            self.images, self.labels = self.images.to(device), self.labels.to(device)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]

    def __getitems__(self, indices: list[int]) -> dict:
        index = torch.as_tensor(indices)
        if self.device is not None and self.device.type == "cuda":  # a pageable copy would wait for the GPU
            index = index.pin_memory().to(self.device, non_blocking=True)
        return {"image": self.images[index], "label": self.labels[index]}


class EpochKeys(Dataset):
    """WholeBatches for the keys (epoch, index) of EpochShuffle (in-memory items draw nothing at random)."""

    def __init__(self, batches: WholeBatches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitems__(self, keys: list[tuple[int, int]]) -> dict:
        return self.batches.__getitems__([index for _, index in keys])


def keep_batch(batch: dict) -> dict:
    """The collate function of a dataset that returns whole batches: nothing left to stack."""
    return batch


class ResumableLoading:
    """Mixin of a LightningDataModule: the seed of its training order and items, kept in checkpoints (Lightning
    saves a datamodule's `state_dict`), and `batch_loader` for its loaders."""

    _loading_seed: int | None = None

    @property
    def loading_seed(self) -> int:
        """The run's seed (pl.seed_everything keeps it in PL_GLOBAL_SEED), else one drawn from the OS."""
        if self._loading_seed is None:
            seed = os.environ.get("PL_GLOBAL_SEED")
            self._loading_seed = int(seed) if seed is not None else random.SystemRandom().getrandbits(63)
        return self._loading_seed

    def state_dict(self) -> dict[str, Any]:
        return {"loading_seed": self.loading_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loading_seed = state_dict.get("loading_seed", self._loading_seed)


def pinned(datamodule) -> bool:
    """Whether batches are put in pinned memory (a faster, asynchronous copy to a GPU): `data.pin_memory`, or when
    it is null (the default) whenever the run trains on a GPU."""
    if datamodule.pin_memory is not None:
        return datamodule.pin_memory
    trainer = datamodule.trainer
    return trainer is not None and trainer.strategy.root_device.type == "cuda"


def batch_loader(datamodule, dataset: Dataset, train: bool, in_memory: bool = False) -> DataLoader:
    """Batches of `dataset` with the datamodule's batch size and workers: for training in the resumable order
    of the module docstring and (with the datamodule's `drop_last`) without a ragged last batch, a set smaller
    than one batch being refused; otherwise in order and complete. `in_memory`: `dataset` holds `images` and
    `labels` tensors and is served a whole batch at a time."""
    seed = datamodule.loading_seed
    device = getattr(datamodule, "data_device", None) if train and in_memory else None
    workers = 0 if device is not None else datamodule.num_workers  # device tensors stay in this process
    # a loader of its own generator (its workers' seeds): building or restarting one leaves the global one alone
    options = dict(batch_size=datamodule.batch_size, num_workers=workers,
                   pin_memory=device is None and pinned(datamodule), persistent_workers=workers > 0,
                   generator=torch.Generator().manual_seed(seed))
    if not train:
        return DataLoader(WholeBatches(dataset) if in_memory else dataset,
                          collate_fn=keep_batch if in_memory else None, **options)
    if datamodule.drop_last and len(dataset) < datamodule.batch_size:
        raise UserError(
            f"The dataset has {len(dataset)} training images, fewer than one batch (data.batch_size="
            f"{datamodule.batch_size}). Lower data.batch_size or add images."
        )
    items = EpochKeys(WholeBatches(dataset, device)) if in_memory else SeededItems(dataset, seed)
    epoch = epoch_in_progress(datamodule.trainer) if datamodule.trainer is not None else 0
    return StatefulDataLoader(items, sampler=EpochShuffle(len(dataset), seed, epoch), drop_last=datamodule.drop_last,
                              collate_fn=keep_batch if in_memory else None, **options)
