"""Every shipped recipe trains one epoch on a tiny demo corpus and writes the documented run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from snlu.cli.train import main
from snlu.tasks.base import Task
from snlu.training.trainer import Trainer

RECIPES = Path(__file__).parents[2] / "recipes"
NER = ["fusion_raw_all", "fusion_raw_dpmask", "fusion_tokenized_all", "fusion_tokenized_dpmask",
       "fusion_concat_all", "fusion_concat_dpmask", "text_only"]


def check_run_dir(run: Path, metric: str) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("dev", "test"):
        assert 0.0 <= metrics[split][metric] <= (1.0 if metric == "f1" else 100.0)
    if metric == "f1":
        for stats in metrics["test"]["per_type"].values():
            assert set(stats) == {"precision", "recall", "f1", "support"}
    for f in ("config.yaml", "train.log", "environment.json", "best/model.safetensors", "best/config.yaml",
              "best/vocab.json"):
        assert (run / f).is_file(), f
    assert "epoch 1" in (run / "train.log").read_text()
    return metrics


@pytest.mark.parametrize("name", NER)
def test_ner_recipe_trains_one_epoch(name, tmp_path, tiny, demo_overrides):
    run = tmp_path / "run"
    over = [o for o in tiny if not o.startswith("audio_encoder")] if name == "text_only" else tiny
    assert main([str(RECIPES / f"{name}.yaml"), *over, *demo_overrides, "--output-dir", str(run)]) == 0
    check_run_dir(run, "f1")
    for f in ("labels.json", "text_encoder/tokenizer.json", "text_encoder/config.json"):
        assert (run / "best" / f).is_file()
    lines = (run / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and all("speaker_info" in json.loads(x) for x in lines)


def test_asr_pretrain_then_init_from(tmp_path, tiny, demo_overrides):
    asr = tmp_path / "asr"
    assert main([str(RECIPES / "asr_pretrain.yaml"), *tiny, *demo_overrides, "--output-dir", str(asr)]) == 0
    metrics = check_run_dir(asr, "cer")
    assert set(metrics["test"]) == {"cer", "errors", "chars", "syllable_er_tonal", "syllable_er_toneless", "syllables"}
    ner = tmp_path / "ner"
    assert main([str(RECIPES / "fusion_raw_all.yaml"), *tiny, *demo_overrides, "train.epochs=1",
                 f"audio_encoder.init_from={asr}", "--output-dir", str(ner)]) == 0
    assert "audio_encoder.init_from: copied" in (ner / "train.log").read_text()


def test_best_checkpoint_reloads_to_identical_predictions(tmp_path, tiny, demo_overrides):
    run = tmp_path / "run"
    assert main([str(RECIPES / "fusion_tokenized_dpmask.yaml"), *tiny, *demo_overrides, "frontend.norm=global",
                 "--output-dir", str(run)]) == 0
    task = Task.load(run)
    assert task.frontend.cmvn_std.ne(1).any()  # global CMVN statistics came back with the model
    saved = load_file(str(run / "best" / "model.safetensors"))
    for k, v in task.state_dict().items():
        if k in saved:
            torch.testing.assert_close(v, saved[k])
    from omegaconf import OmegaConf

    from snlu.registry import DATASETS

    cfg = OmegaConf.load(run / "config.yaml")
    test = DATASETS.build(cfg.data).load()["test"]
    metrics, preds = Trainer(task, cfg, tmp_path / "eval").evaluate(test)
    assert metrics["f1"] == json.loads((run / "metrics.json").read_text())["test"]["f1"]
    written = [json.loads(x)["entity"] for x in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert written == [[[s, e, u.sentence[s:e], t] for s, e, t in p] for u, p in zip(test, preds)]
