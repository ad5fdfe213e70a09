"""Faults during training: non-finite steps are skipped and counted (too many in a row stop the run, the
last good checkpoint intact), CUDA out-of-memory batches are skipped (a fake exception), SIGINT/SIGTERM
finish the step and checkpoint, a non-empty run directory is refused or moved aside, never deleted."""

from __future__ import annotations

import math
import signal

import pytest
import torch

from snlu.core.errors import SnluError
from snlu.rundir import make_run_dir
from snlu.training import checkpoint
from snlu.training.trainer import Interrupted, TrainingError


def adam_steps(trainer) -> int:
    return int(next(iter(trainer.optimizer.state.values()))["step"])


def test_non_finite_loss_and_gradient_skip_their_step(toy, snlu_log, utts):
    trainer = toy(epochs=1)
    trainer.task.faults = {2: "nan_loss", 3: "nan_grad"}
    before = {k: v.clone() for k, v in trainer.task.state_dict().items()}
    trainer.fit(utts, utts[:4])
    assert trainer.history[0]["skipped_steps"] == 2 and trainer.progress.bad_steps == 2
    assert trainer.progress.bad_in_a_row == 0  # reset by the good steps after them
    assert adam_steps(trainer) == 4  # 6 batches, 2 skipped: the optimizer never saw them
    assert all(torch.isfinite(v).all() for v in trainer.task.state_dict().values())
    assert any(not torch.equal(v, trainer.task.state_dict()[k]) for k, v in before.items())
    text = snlu_log.text
    assert "epoch 1 batch 2/6: non-finite loss, step skipped (1 in a row, 1 in the run)" in text
    assert "epoch 1 batch 3/6: non-finite gradient, step skipped (2 in a row, 2 in the run)" in text
    assert math.isfinite(trainer.history[0]["loss"])


def test_too_many_bad_steps_stop_with_the_last_good_checkpoint_intact(toy, utts):
    trainer = toy(epochs=1, max_bad_steps=3, keep_checkpoints=2)
    trainer.task.faults = {n: "nan_loss" for n in range(3, 7)}
    with pytest.raises(TrainingError) as e:
        trainer.fit(utts, utts[:4])
    last = trainer.run_dir / "checkpoints" / "e001-b000002"
    assert str(e.value) == (f"3 non-finite steps in a row (train.max_bad_steps=3) at epoch 1 batch 5: training "
                            f"diverged, stopping (last good checkpoint: {last}; lower the learning rates?)")
    assert checkpoint.complete(trainer.run_dir) == [trainer.run_dir / "checkpoints" / "e001-b000001", last]
    again = toy("run")
    again.resume(last)  # loads: finite weights, position right after the last good step
    assert again.progress.batch == 2 and again.progress.bad_in_a_row == 0
    assert all(torch.isfinite(v).all() for v in again.task.state_dict().values())


def test_cuda_out_of_memory_skips_the_batch_then_gives_up(toy, snlu_log, utts):
    trainer = toy(epochs=1, max_oom_skips=2)
    trainer.task.faults = {2: "oom", 5: "oom"}
    trainer.fit(utts, utts[:4])
    assert trainer.history[0]["skipped_steps"] == 2 and trainer.progress.oom_skips == 2 and adam_steps(trainer) == 4
    assert not any(p.grad is not None and not torch.isfinite(p.grad).all() for p in trainer.task.parameters())
    assert "epoch 1 batch 2/6: CUDA out of memory on 2 utterances (first toy.jsonl:" in snlu_log.text
    assert "batch skipped (1 of train.max_oom_skips=2)" in snlu_log.text

    trainer = toy("again", epochs=1, max_oom_skips=2)
    trainer.task.faults = {1: "oom", 2: "oom", 4: "oom"}
    with pytest.raises(TrainingError, match=r"^CUDA out of memory on 3 batches \(train.max_oom_skips=2\): lower "
                                            r"train.batch_size, set train.batch_frames, or use train.accum_steps$"):
        trainer.fit(utts, utts[:4])


@pytest.mark.signals
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_finishes_the_step_writes_a_checkpoint_and_says_how_to_resume(toy, sig, code, utts):
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    trainer = toy(checkpoint_every=0)
    trainer.task.faults = {3: (sig,)}
    with pytest.raises(Interrupted) as e:
        trainer.fit(utts, utts[:4])
    path = trainer.run_dir / "checkpoints" / "e001-b000003"  # the step the signal arrived in was finished
    assert e.value.exit_code == code
    assert str(e.value) == (f"{signal.Signals(sig).name}: stopped at epoch 1, 3 batches done; checkpoint {path}. "
                            f"Continue with: snlu-train --resume {trainer.run_dir}")
    assert checkpoint.latest(trainer.run_dir) == path and adam_steps(trainer) == 3
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored


@pytest.mark.signals
def test_a_second_signal_stops_at_once(toy, utts):
    trainer = toy(checkpoint_every=0)
    trainer.task.faults = {2: (signal.SIGINT, signal.SIGINT)}
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(utts, utts[:4])
    assert checkpoint.latest(trainer.run_dir) is None


def test_non_empty_run_directory_is_refused_or_moved_aside(tmp_path, snlu_log):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(SnluError, match=rf"^{run}: run directory is not empty \(continue it with --resume {run}, "
                                        r"move it aside with --overwrite, or choose another --output-dir\)$"):
        make_run_dir(str(run), "r.yaml")
    assert make_run_dir(str(run), "r.yaml", overwrite=True) == run
    assert list(run.iterdir()) == []
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and (aside[0] / "metrics.json").read_text() == "{}"  # nothing deleted
    assert f"--overwrite: moved the existing {run} aside to {aside[0]}" in snlu_log.text
    (run / "x").write_text("")
    make_run_dir(str(run), "r.yaml", overwrite=True)  # twice in the same second: a distinct name
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]) == 2
