"""The data processor: what data-loader workers get instead of the model. It pickles small (no weights: the
tokenizer, the units, a frontend that only computes features), and a copy prepares exactly what the original does."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from snlu.config import load_recipe
from snlu.data.batching import UtteranceDataset, make_loader
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.registry import TASKS

RECIPES = Path(__file__).parents[2] / "recipes"


def test_workers_get_a_small_processor_that_prepares_the_same(demo_dir, demo_overrides, tiny):
    cfg = load_recipe(RECIPES / "fusion_raw_all.yaml", [*tiny, *demo_overrides])
    utts = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))
    task = TASKS.get("spoken_ner").cls.from_data(cfg, utts)
    processor = task.processor
    assert not isinstance(processor, nn.Module)
    blob = pickle.dumps(processor)
    weights = sum(p.numel() * p.element_size() for p in task.parameters())
    assert len(blob) < weights / 10  # the model's weights stay behind
    copy = pickle.loads(blob)
    for u in utts[:2]:
        mine, theirs = processor.prepare(u), copy.prepare(u)
        assert mine.keys() == theirs.keys()
        for k, v in mine.items():
            assert torch.equal(v, theirs[k]) if torch.is_tensor(v) else v == theirs[k]
    loader = make_loader(utts, processor, 2, 1, False, num_workers=0)
    assert isinstance(loader.dataset, UtteranceDataset) and loader.dataset.processor is processor
    batch = next(iter(loader))
    assert batch["feats"].shape[0] == 2 and int(batch["feat_lengths"].max()) == batch["feats"].shape[1]
