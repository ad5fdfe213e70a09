"""The run tracker: TensorBoard scalars (read back with TensorBoard's own reader), curves.png, optional W&B."""

from __future__ import annotations

import json
import logging
import sys
import types

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from snlu.training.tracking import Tracker

PNG = b"\x89PNG\r\n\x1a\n"


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def epoch_record(epoch: int, f1: float) -> dict:
    return {"epoch": epoch, "loss": 3.0 / epoch, "terms": {"text_crf": 2.0 / epoch, "ctc": 10.0 / epoch},
            "lrs": {"textual_encoder": 1e-5 * 0.95 ** (epoch - 1)}, "seconds": 30.0, "utt_per_s": 8.0,
            "skipped_steps": 0, "dev": {"f1": f1, "per_type": {"PER": {"f1": f1 / 2, "support": 3}}}}


def cfg(**train):
    return OmegaConf.create({"train": {"log_every": 2, "wandb": False, **train}})


def test_step_means_epoch_values_and_curves(tmp_path):
    history = []
    with Tracker(tmp_path, cfg(), "f1") as tracker:
        for step in range(1, 6):  # 5 steps in epoch 1: logged at 2, 4, and the epoch's last step 5
            tracker.step(step, float(step), {"text_crf": 10.0 * step})
        history.append(epoch_record(1, 0.25))
        tracker.epoch(history, 5)
        history.append(epoch_record(2, 0.5))
        tracker.epoch(history, 10)
    s = scalars(tmp_path)
    assert s["train/loss"] == [(2, 1.5), (4, 3.5), (5, 5.0)]
    assert s["train/text_crf"] == [(2, 15.0), (4, 35.0), (5, 50.0)]
    assert s["dev/f1"] == [(5, 0.25), (10, 0.5)]
    assert s["dev/per_type/PER/f1"] == [(5, 0.125), (10, 0.25)]
    assert s["lr/textual_encoder"] == [(5, pytest.approx(1e-5)), (10, pytest.approx(0.95e-5))]
    assert s["speed/utt_per_s"] == [(5, 8.0), (10, 8.0)] and s["epoch"] == [(5, 1.0), (10, 2.0)]
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)


def test_nothing_is_written_without_values(tmp_path):
    Tracker(tmp_path, cfg(), "f1").close()
    assert list(tmp_path.iterdir()) == []  # a Trainer used only to evaluate leaves no files


class FakeWandb(types.ModuleType):
    def __init__(self, fail: bool = False):
        super().__init__("wandb")
        self.fail, self.logged, self.finished, self.kwargs = fail, [], False, None

    def init(self, **kwargs):
        if self.fail:
            raise RuntimeError("no network")
        self.kwargs = kwargs
        return self

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self):
        self.finished = True


def test_wandb_gets_the_same_scalars_when_enabled(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with Tracker(tmp_path, cfg(wandb=True, wandb_project="abl"), "f1") as tracker:
        tracker.step(1, 1.0, {})
        tracker.step(2, 3.0, {})
        tracker.epoch([epoch_record(1, 0.5)], 2)
    assert fake.kwargs["project"] == "abl" and fake.kwargs["config"]["train"]["log_every"] == 2
    assert fake.logged[0] == (2, {"train/loss": 2.0})
    assert fake.logged[1][0] == 2 and fake.logged[1][1]["dev/f1"] == 0.5
    assert fake.finished


def test_wandb_failing_to_start_never_stops_the_run(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", FakeWandb(fail=True))
    logger = logging.getLogger("snlu")
    logger.addHandler(caplog.handler)
    try:
        with Tracker(tmp_path, cfg(wandb=True), "f1") as tracker:
            tracker.step(2, 1.0, {})
    finally:
        logger.removeHandler(caplog.handler)
    assert "could not start W&B (no network)" in caplog.text
    assert scalars(tmp_path)["train/loss"] == [(2, 1.0)]  # TensorBoard went on


def test_a_real_run_has_event_files_with_every_scalar_and_curves(random_run):
    assert list(random_run.glob("events.out.tfevents.*"))
    s = scalars(random_run)
    for tag in ("train/loss", "train/text_crf", "train/audio_crf", "train/ctc", "dev/f1", "dev/precision",
                "speed/utt_per_s", "speed/epoch_minutes", "epoch", *(f"lr/{g}" for g in (
                    "textual_encoder", "textual_crf", "audio_encoder", "audio_crf", "fusion_layer"))):
        assert tag in s, tag
    assert s["epoch"] == [(2, 1.0)]  # tiny: 8 utterances, batch 4 -> 2 steps in the one epoch
    history = json.loads((random_run / "history.json").read_text())
    assert s["dev/f1"] == [(2, pytest.approx(history[0]["dev"]["f1"]))]
    assert s["train/text_crf"][-1][1] == pytest.approx(history[0]["terms"]["text_crf"], rel=1e-6)
    assert (random_run / "curves.png").read_bytes().startswith(PNG)
