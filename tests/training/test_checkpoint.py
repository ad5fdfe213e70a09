"""Checkpoints: a round trip restores weights, optimizer, scheduler, RNG and position exactly; writes are
atomic and rotated; the files are safetensors + JSON; a resumed toy run equals an uninterrupted one."""

from __future__ import annotations

import json
import random
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from snlu.core.errors import SnluError
from snlu.data.vocab import CharVocab
from snlu.training import checkpoint
from snlu.training.checkpoint import Progress
from snlu.training.trainer import Interrupted


def draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_round_trip_restores_everything(toy, utts):
    trainer = toy(epochs=1, checkpoint_every=0)
    trainer.fit(utts, utts[:4])  # optimizer moments, a scheduler step, best bookkeeping, history
    trainer.progress.batch, trainer.progress.sums = 3, {"loss": 1.5, "steps": 3}
    path = trainer.checkpoint()
    weights = {k: v.clone() for k, v in trainer.task.state_dict().items()}
    optim = trainer.optimizer.state_dict()
    optim_tensors = {(i, k): v.clone() for i, s in optim["state"].items() for k, v in s.items()}
    sched, progress, expected = trainer.scheduler.state_dict(), trainer.progress, draws()

    other = toy("other", epochs=1)  # different initial weights, fresh optimizer and scheduler
    draws()
    assert not torch.equal(other.task.net[0].weight, weights["net.0.weight"])
    other.resume(path)
    assert_same_tensors(other.task.state_dict(), weights)
    restored = other.optimizer.state_dict()
    assert restored["param_groups"] == optim["param_groups"]
    assert {(i, k): v for i, s in restored["state"].items() for k, v in s.items()}.keys() == optim_tensors.keys()
    for (i, k), v in optim_tensors.items():
        assert torch.equal(restored["state"][i][k], v), (i, k)
    assert other.scheduler.state_dict() == sched
    assert other.progress == progress and other.progress.best_epoch == 1 and len(other.progress.history) == 1
    assert draws() == expected  # Python, NumPy and torch generators continue where they were


def test_files_are_safetensors_and_json_written_atomically(toy):
    trainer = toy()
    path = trainer.checkpoint()
    assert path.name == "e001-b000000"
    assert sorted(f.name for f in path.iterdir()) == ["model.safetensors", "trainer.json", "trainer.safetensors"]
    state = json.loads((path / "trainer.json").read_text())
    assert state["format"] == checkpoint.FORMAT and state["progress"].pop("seconds") > 0  # the run's time so far
    assert state["progress"] == {k: v for k, v in checkpoint.dataclasses.asdict(Progress()).items() if k != "seconds"}
    assert "rng.torch" in load_file(str(path / "trainer.safetensors"))
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_rotation_and_what_counts_as_a_checkpoint(toy):
    trainer = toy(keep_checkpoints=2)
    for epoch, batch in ((1, 1), (1, 2), (999, 0), (1000, 0)):
        trainer.progress.epoch, trainer.progress.batch = epoch, batch
        trainer.checkpoint()
    run = trainer.run_dir
    assert [p.name for p in checkpoint.complete(run)] == ["e999-b000000", "e1000-b000000"]  # numeric order
    (run / "checkpoints" / ".e1001-b000000.tmp").mkdir()  # a write killed before its rename
    (run / "checkpoints" / "e1002-b000000").mkdir()  # not a checkpoint: no trainer.json
    assert checkpoint.latest(run).name == "e1000-b000000"
    trainer.progress.epoch = 1001
    trainer.checkpoint()  # replaces the stale temporary folder
    assert checkpoint.latest(run).name == "e1001-b000000"
    assert not (run / "checkpoints" / ".e1001-b000000.tmp").exists()


def test_one_checkpoint_is_kept_by_default(toy):
    trainer = toy()
    for batch in (1, 2, 3):
        trainer.progress.batch = batch
        trainer.checkpoint()
    assert [p.name for p in checkpoint.complete(trainer.run_dir)] == ["e001-b000003"]
    assert [p.name for p in (trainer.run_dir / "checkpoints").iterdir()] == ["e001-b000003"]


def test_the_run_time_adds_up_over_sessions(toy):
    """A resumed run's time is the earlier sessions' (up to the checkpoint resumed from) plus its own, so
    metrics.json's minutes of a resumed run is the sum over its sessions."""
    trainer = toy()
    trainer.started -= 120  # two minutes into the first session
    path = trainer.checkpoint()
    saved = json.loads((path / "trainer.json").read_text())["progress"]["seconds"]
    assert 120 <= saved < 180
    resumed = toy("other")
    resumed.resume(path)
    resumed.started -= 30  # half a minute into the second
    assert resumed.seconds() == pytest.approx(saved + 30, abs=20)


def test_a_checkpoint_from_other_data_or_damaged_is_refused(toy, utts):
    trainer = toy()
    path = trainer.checkpoint()
    other = toy("other")
    other.task.vocab = CharVocab.build([u.sentence for u in utts] + ["新字"])
    with pytest.raises(SnluError, match="vocabulary or label set built from the training data differs"):
        other.resume(path)
    (path / "trainer.json").write_text("{not json")
    with pytest.raises(SnluError, match=f"{path}: unreadable checkpoint"):
        toy("third").resume(path)


def test_resumed_toy_run_equals_uninterrupted(toy, utts):
    """SIGTERM mid-epoch 2, a fresh trainer resumes: same weights, optimizer state, history and best."""
    dev = utts[:5]
    a = toy("a", checkpoint_every=0)
    best_a = a.fit(utts, dev)
    b = toy("b")
    b.task.faults = {9: (signal.SIGTERM,)}  # 6 batches per epoch: epoch 2, batch 3
    with pytest.raises(Interrupted) as e:
        b.fit(utts, dev)
    assert e.value.exit_code == 143 and checkpoint.latest(b.run_dir).name == "e002-b000003"
    c = toy("b")  # a new process: fresh model and RNG, then the checkpoint
    c.resume(checkpoint.latest(c.run_dir))
    assert c.fit(utts, dev) == best_a
    assert_same_tensors(c.task.state_dict(), a.task.state_dict())
    assert_same_tensors(load_file(str(c.run_dir / "best" / "model.safetensors")),
                        load_file(str(a.run_dir / "best" / "model.safetensors")))
    for x, y in zip(a.optimizer.state_dict()["state"].values(), c.optimizer.state_dict()["state"].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
    timing = ("seconds", "utt_per_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in c.history] == \
        [{k: v for k, v in h.items() if k not in timing} for h in a.history]


def test_sampler_skips_to_a_batch_and_reproduces_the_rest():
    from snlu.data.batching import BucketBatchSampler

    def sampler() -> BucketBatchSampler:  # a new process builds a new one
        return BucketBatchSampler([float(i % 7) for i in range(23)], 3, 2, shuffle=True, seed=5)

    s = sampler()
    s.set_epoch(4)
    full = list(s)
    again = sampler()
    again.set_epoch(4, start=5)
    assert list(again) == full[5:] and len(again) == len(full) == 8
    again.set_epoch(5)
    assert list(again) != full and sorted(i for b in again for i in b) == list(range(23))
