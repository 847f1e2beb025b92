"""State that differs between the processes of a multi-GPU (DDP) run, such as the random generators and image
pools. Lightning writes the checkpoint of rank 0 alone, so such state is gathered from every rank into it, and
each rank takes its own back on resume. Weights, optimizer state and buffers are the same on every rank and
are not gathered."""

from __future__ import annotations

import logging
from typing import Any

import torch.distributed as dist

log = logging.getLogger(__name__)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes of the run (0, 1 outside DDP)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def every_rank(state: Any) -> list[Any]:
    """Each rank's `state`, in rank order (a collective: every rank calls it, as checkpoints are dumped)."""
    _, world = rank_and_world()
    if world == 1:
        return [state]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, state)
    return states


def this_ranks(states: list[Any]) -> Any:
    """This rank's entry of `every_rank`'s list; on another number of processes than the run had, the one of
    the same rank or rank 0's (the run goes on, but no longer as it would have)."""
    rank, world = rank_and_world()
    if len(states) != world and rank == 0:
        log.warning("This checkpoint comes from a run on %d processes and resumes on %d: the random draws after "
                    "the resume differ from those the run would have made.", len(states), world)
    return states[rank] if rank < len(states) else states[0]
