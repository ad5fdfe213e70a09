"""Gradient accumulation (``train.accum_steps``): k batches accumulated give the gradient of one batch k times
as big; an epoch takes one optimizer step per group; a run stopped between groups resumes exactly."""

from __future__ import annotations

import signal

import pytest
import torch

from snlu.training import checkpoint
from snlu.training.trainer import Interrupted


def grads(trainer) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in trainer.task.named_parameters()}


def test_accumulated_gradient_equals_the_big_batch_gradient(toy, utts):
    small, big = toy("small", accum_steps=2), toy("big")
    for t in (small, big):
        t.task.eval()  # no dropout: the gradient is a function of the batch
    processor = small.task.processor
    items = [processor.prepare(u) for u in utts[:4]]
    b1, b2, both = processor.collate(items[:2]), processor.collate(items[2:]), processor.collate(items)
    v_small, n_small, _ = small.forward_backward([b1, b2])
    v_big, n_big, _ = big.forward_backward([both])
    assert v_small == pytest.approx(v_big, rel=1e-6) and n_small == pytest.approx(n_big, rel=1e-5)
    g_small, g_big = grads(small), grads(big)
    for k in g_big:
        torch.testing.assert_close(g_small[k], g_big[k], rtol=1e-5, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in g_big.values())


@pytest.mark.parametrize("accum, steps", [(1, 6), (2, 3), (4, 2)])
def test_one_optimizer_step_per_group(toy, utts, accum, steps):
    trainer = toy(epochs=1, accum_steps=accum)
    trainer.fit(utts, utts[:4])
    assert int(next(iter(trainer.optimizer.state.values()))["step"]) == steps  # 6 batches, last group shorter
    assert trainer.progress.step == 6 and trainer.history[0]["skipped_steps"] == 0


def test_a_run_stopped_between_groups_resumes_exactly(toy, utts):
    full = toy("full", epochs=2, accum_steps=4, checkpoint_every=0)
    full.fit(utts, utts[:4])

    stopped = toy("stopped", epochs=2, accum_steps=4, checkpoint_every=0)
    stopped.task.faults = {3: (signal.SIGTERM,)}  # mid-group: the group (4 batches) finishes first
    with pytest.raises(Interrupted):
        stopped.fit(utts, utts[:4])
    last = checkpoint.latest(stopped.run_dir)
    assert last.name == "e001-b000004"
    again = toy("stopped", epochs=2, accum_steps=4, checkpoint_every=0)
    again.resume(last)
    again.fit(utts, utts[:4])
    for k, v in full.task.state_dict().items():
        assert torch.equal(v, again.task.state_dict()[k]), k
    assert [h["loss"] for h in again.history] == [h["loss"] for h in full.history]


@pytest.mark.parametrize("accum, limit, steps", [(1, 4, 4), (2, 3, 2), (1, 8, 8)])
def test_max_steps_ends_the_run_after_that_many_batches(toy, utts, accum, limit, steps):
    trainer = toy(epochs=3, accum_steps=accum, max_steps=limit)
    trainer.fit(utts, utts[:4])
    assert trainer.progress.step == limit  # batches (6 an epoch); the last group is cut to fit
    assert int(next(iter(trainer.optimizer.state.values()))["step"]) == steps
    assert len(trainer.history) == (limit + 5) // 6  # the epoch in progress is evaluated, then the run ends
    assert (trainer.run_dir / "best").is_dir()
