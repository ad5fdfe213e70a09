"""Length-bucketed batches: every utterance exactly once per epoch (over all ranks), deterministic per seed,
epoch and rank, the same global batches for every world size, frame budgets kept, padding measured right."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snlu.data.batching import BucketBatchSampler, fill, padding_efficiency


def lengths_of(n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(0.5, 9.0), 2) for _ in range(n)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 120), batch=st.integers(1, 9), bucket=st.integers(1, 5), world=st.integers(1, 4),
       seed=st.integers(0, 3), epoch=st.integers(1, 3), budget=st.sampled_from([0.0, 12.0, 30.0]))
def test_every_utterance_once_per_epoch_over_all_ranks(n, batch, bucket, world, seed, epoch, budget):
    lengths = lengths_of(n, seed)
    if n < world:
        with pytest.raises(ValueError, match="cannot be shared"):
            BucketBatchSampler(lengths, batch, bucket, True, seed, 0, world, budget)
        return
    samplers = [BucketBatchSampler(lengths, batch, bucket, True, seed, r, world, budget) for r in range(world)]
    per_rank = []
    for s in samplers:
        s.set_epoch(epoch)
        per_rank.append(list(s))
    assert len({len(b) for b in per_rank}) == 1  # the same number of steps on every rank
    assert all(len(b) == len(samplers[0]) for b in per_rank)
    assert all(b for batches in per_rank for b in batches)  # no rank ever gets an empty batch
    seen = sorted(i for batches in per_rank for b in batches for i in b)
    assert seen == list(range(n))


def test_order_is_a_function_of_seed_epoch_and_rank_only():
    lengths = lengths_of(200)

    def order(seed: int, epoch: int, rank: int) -> list[list[int]]:
        s = BucketBatchSampler(lengths, 8, 4, True, seed, rank, 2)
        s.set_epoch(epoch)
        return list(s)

    assert order(1, 2, 0) == order(1, 2, 0) and order(1, 2, 1) == order(1, 2, 1)
    assert order(1, 2, 0) != order(1, 3, 0) != order(2, 2, 0)
    assert order(1, 2, 0) != order(1, 2, 1)


def test_global_batches_do_not_depend_on_the_world_size():
    """What N ranks of batch_size b train on in a step is what one process of batch_size N*b trains on
    (99 = 2 chunks of 36 + 12 + 12 + 3: no batch smaller than the world to merge away)."""
    lengths = lengths_of(99)
    one = BucketBatchSampler(lengths, 12, 3, True, 5, 0, 1)
    one.set_epoch(4)
    shards = [BucketBatchSampler(lengths, 4, 3, True, 5, r, 3) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    together = [sorted(a + b + c) for a, b, c in zip(*(list(s) for s in shards))]
    assert together == [sorted(b) for b in one]


def test_a_budget_bounds_the_padded_size_and_sorting_keeps_padding_low():
    lengths = lengths_of(300)
    s = BucketBatchSampler(lengths, 16, 64, True, 0, budget=40.0)
    s.set_epoch(1)
    batches = list(s)
    assert all(len(b) * max(lengths[i] for i in b) <= 40.0 or len(b) == 1 for b in batches)
    assert len({len(b) for b in batches}) > 3  # short utterances make bigger batches
    assert padding_efficiency(batches, lengths) > 0.9
    rng = random.Random(0)
    order = list(range(300))
    rng.shuffle(order)
    unsorted = [order[i : i + 16] for i in range(0, 300, 16)]
    assert padding_efficiency(unsorted, lengths) < 0.75  # what bucketing saves


def test_fill_and_padding_efficiency_by_brute_force():
    lengths = [1.0, 2.0, 2.0, 5.0, 6.0]
    assert fill([0, 1, 2, 3, 4], lengths, 2, 0) == [[0, 1], [2, 3], [4]]
    # budget 6: [0,1,2] pads to 3 x 2 = 6; adding item 3 would make 4 x 5 = 20; [3] then [3,4] = 12 > 6
    assert fill([0, 1, 2, 3, 4], lengths, 99, 6.0) == [[0, 1, 2], [3], [4]]
    batches = [[0, 1, 2], [3, 4]]
    real, padded = sum(lengths), 3 * 2.0 + 2 * 6.0
    assert padding_efficiency(batches, lengths) == pytest.approx(real / padded)


def test_evaluation_order_is_sorted_and_sharded():
    lengths = lengths_of(11)
    s = BucketBatchSampler(lengths, 4, 1, False)
    flat = [i for b in s for i in b]
    assert flat == sorted(range(11), key=lambda i: lengths[i])
