"""How evaluation work is shared between DDP ranks: each rank takes its share of the images and of the samples,
draws with its own seed, and counts are summed over the ranks."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from gan_cli.rank_local import rank_and_world


def share(total: int, rank: int, world: int) -> int:
    """This rank's part of `total` items (the first ranks take one more when it does not divide)."""
    return total // world + (rank < total % world)


def rank_share(dataset: Dataset, rank: int, world: int) -> Subset:
    """One rank's share of `dataset`: every `world`-th item from the `rank`-th."""
    return Subset(dataset, range(rank, len(dataset), world))


def reference_batches(datamodule, split: str, batch_size: int) -> DataLoader:
    """This rank's share of the `split` images in batches, for a model's own held-out scores (a model
    counting over them sums its counts over the ranks with `summed_over_ranks`)."""
    rank, world = rank_and_world()
    return DataLoader(rank_share(datamodule.build(split), rank, world), batch_size=batch_size,
                      num_workers=getattr(datamodule, "num_workers", 0))


def summed_over_ranks(counts: Tensor) -> Tensor:
    """`counts` summed over the ranks under DDP (in place), else as they are."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(counts)
    return counts


def rank_seed(seed: int, rank: int) -> int:
    """The seed of one rank's draws: each rank samples different noise."""
    return seed + 100_003 * rank
