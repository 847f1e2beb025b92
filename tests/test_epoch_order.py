"""The training order (gan_cli.data.loading.EpochShuffle): a permutation drawn from (seed, epoch) alone, a new
one each epoch, shared out between DDP ranks, and resumable from its state in the middle of an epoch."""

from __future__ import annotations

from collections import Counter

from torch.utils.data import DistributedSampler

from gan_cli.data.loading import EpochShuffle


def keys(sampler: EpochShuffle, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_epoch_has_its_own_order_drawn_from_the_seed_and_the_epoch_alone():
    first, again = EpochShuffle(10, seed=3), EpochShuffle(10, seed=3)
    assert keys(first, 0) == keys(again, 0)
    assert [i for _, i in keys(first, 0)] != [i for _, i in keys(first, 1)]
    assert sorted(i for _, i in keys(first, 1)) == list(range(10))
    assert {e for e, _ in keys(first, 4)} == {4}  # an item's random choices are drawn from its epoch too


def test_ddp_ranks_share_each_epoch_and_lightning_keeps_the_sampler():
    ranks = [EpochShuffle(11, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    assert isinstance(ranks[0], DistributedSampler)  # so Lightning does not wrap it (and lose the epoch)
    for epoch in (0, 1):
        shares = [keys(r, epoch) for r in ranks]
        assert [len(s) for s in shares] == [6, 6] == [len(r) for r in ranks]
        seen = Counter(i for share in shares for _, i in share)
        assert set(seen) == set(range(11)) and sum(seen.values()) == 12  # one item padded in, as DistributedSampler
    assert keys(ranks[0], 0) != keys(ranks[0], 1)


def test_a_restored_state_goes_on_with_the_next_key_of_its_rank():
    straight = EpochShuffle(11, seed=3, num_replicas=2, rank=1)
    expected = keys(straight, 2)
    stopped = EpochShuffle(11, seed=3, num_replicas=2, rank=1)
    stopped.set_epoch(2)
    taken = iter(stopped)
    head = [next(taken) for _ in range(4)]
    restored = EpochShuffle(11, seed=3, num_replicas=2, rank=1)
    restored.load_state_dict(stopped.state_dict())
    assert head + list(restored) == expected
    finished = EpochShuffle(11, seed=3, num_replicas=2, rank=1)
    finished.load_state_dict({"epoch": 2, "given": 6})  # saved at the end of epoch 2: the next pass is epoch 3
    assert list(finished) == keys(EpochShuffle(11, seed=3, num_replicas=2, rank=1), 3)
