"""The trainer and the lr schedule: stepped per batch or per epoch as the schedule says, every group's lr in
the history, the schedule's length from epochs, accumulation and max_steps, a plugin schedule, and a run
resumed in the middle of a warm-up continuing the same curve."""

from __future__ import annotations

import dataclasses
import signal

import pytest
import torch

from snlu.optim.schedulers import Schedule
from snlu.registry import SCHEDULERS
from snlu.training import checkpoint
from snlu.training.trainer import Interrupted


def test_trainer_steps_per_batch_or_per_epoch_and_logs_each_group(toy, utts):
    per_step = toy("a", epochs=2, checkpoint_every=0, scheduler={"name": "warmup_linear", "warmup_steps": 3})
    per_step.fit(utts, utts[:4])  # 6 batches per epoch: 12 steps in all
    lrs = [h["lrs"]["toy"] for h in per_step.history]
    assert lrs == pytest.approx([0.05 * (1 - (6 - 3) / 9), 0.05 * 0.0])  # after steps 6 and 12 of 12
    per_epoch = toy("b", epochs=2, checkpoint_every=0)  # epoch_decay 0.1
    per_epoch.fit(utts, utts[:4])
    assert [h["lrs"]["toy"] for h in per_epoch.history] == pytest.approx([0.05, 0.05 * 0.9])  # used in the epoch


def test_max_steps_and_accumulation_set_the_schedule_length(toy, utts):
    t = toy("a", epochs=3, accum_steps=2, scheduler={"name": "cosine", "warmup_steps": 1})
    assert t.schedule_length(6) == 9  # 3 optimizer steps per epoch
    t = toy("b", epochs=3, max_steps=5, scheduler={"name": "cosine", "warmup_steps": 1})
    assert t.schedule_length(6) == 5
    assert toy("c", epochs=3).schedule_length(6) == 3  # per-epoch: epochs


def test_resume_mid_warmup_equals_uninterrupted(toy, utts):
    sched = {"name": "noam", "warmup_steps": 8}
    a = toy("a", checkpoint_every=0, scheduler=sched)
    best_a = a.fit(utts, utts[:5])
    b = toy("b", scheduler=sched)
    b.task.faults = {5: (signal.SIGTERM,)}  # step 5 of the 8 warm-up steps
    with pytest.raises(Interrupted):
        b.fit(utts, utts[:5])
    c = toy("b", scheduler=sched)
    c.resume(checkpoint.latest(c.run_dir))
    assert c.scheduler.last_epoch == 5 and c.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 6 / 8)
    assert c.fit(utts, utts[:5]) == best_a
    for k, v in a.task.state_dict().items():
        assert torch.equal(v, c.task.state_dict()[k]), k
    assert [h["lrs"] for h in c.history] == [h["lrs"] for h in a.history]


def test_a_plugin_schedule_is_used_by_the_trainer(toy, utts):
    @dataclasses.dataclass
    class HalfConfig:
        after: int = 2

    @SCHEDULERS.register("test_half", config=HalfConfig)
    class Half(Schedule):
        """Full lr for ``after`` steps, then half."""

        def factor(self, n: int) -> float:
            return 1.0 if n < self.cfg.after else 0.5

    try:
        t = toy("a", epochs=1, checkpoint_every=0, scheduler={"name": "test_half", "after": 3})
        t.fit(utts, utts[:4])
        assert t.history[-1]["lrs"]["toy"] == pytest.approx(0.025)
    finally:
        SCHEDULERS._entries.pop("test_half", None)
