"""The audio tasks' preparation (snlu/tasks/audio.py): ``Task.prepare`` computes global CMVN over the training
features, and ``save`` writes it as cmvn.json; a text task has none of it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from snlu.config import load_recipe
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.processor import AudioFeatures
from snlu.registry import TASKS
from snlu.tasks.audio import AudioTask

RECIPES = Path(__file__).parents[2] / "recipes"


def test_the_audio_tasks_are_audio_tasks():
    assert all(issubclass(TASKS.get(n).cls, AudioTask) for n in ("asr", "spoken_ner", "e2e_ner"))
    assert not issubclass(TASKS.get("text_ner").cls, AudioTask)


def test_prepare_computes_global_cmvn_and_save_writes_it(tmp_path, tiny, demo_overrides, demo_dir):
    cfg = load_recipe(RECIPES / "asr_pretrain.yaml", [*tiny, *demo_overrides, "frontend.norm=global"])
    train = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))
    task = TASKS.get("asr").cls.from_data(cfg, train)  # (prepare runs here)
    # the reference: every training frame's features, stacked, and their mean and population std per bin
    features = AudioFeatures(task.processor.audio.frontend)
    frames = torch.cat([features.features(u)[0] for u in train]).double()
    torch.testing.assert_close(task.frontend.cmvn_mean.double(), frames.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(task.frontend.cmvn_std.double(), frames.std(0, correction=0), atol=1e-4, rtol=1e-4)
    task.save(tmp_path / "asr")
    saved = json.loads((tmp_path / "asr" / "cmvn.json").read_text())
    assert torch.equal(torch.tensor(saved["mean"]), task.frontend.cmvn_mean.cpu())


def test_a_text_task_writes_no_cmvn(tmp_path, demo_overrides, demo_dir):
    cfg = load_recipe(RECIPES / "text_only.yaml", demo_overrides)
    train = read_cnerta(demo_dir / "train.jsonl", None)
    task = TASKS.get("text_ner").cls.from_data(cfg, train)
    task.save(tmp_path / "text")
    assert (tmp_path / "text" / "labels.json").is_file() and not (tmp_path / "text" / "cmvn.json").exists()
