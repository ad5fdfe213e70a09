"""benchmarks/reference_compare.py: every setting runs on the tiny demo corpus and is written to the JSON;
the reference batches really are padded to data.max_frames / data.max_chars (50 + 2 word pieces) while
snlu's are not, and the fixed padding changes nothing the model computes on the real positions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from snlu.config import load_recipe
from snlu.core.seed import seed_everything
from snlu.registry import DATASETS, TASKS

ROOT = Path(__file__).parents[2]
spec = importlib.util.spec_from_file_location("reference_compare", ROOT / "benchmarks" / "reference_compare.py")
reference_compare = importlib.util.module_from_spec(spec)
sys.modules["reference_compare"] = reference_compare  # (dataclasses look their module up)
spec.loader.exec_module(reference_compare)
RECIPE = ROOT / "recipes" / "fusion_raw_all.yaml"


def test_every_setting_is_timed_and_the_reference_batches_have_the_fixed_sizes(tmp_path, tiny, demo_overrides):
    out = tmp_path / "cmp.json"
    args = ["--recipe", str(RECIPE), *tiny, *demo_overrides, "train.device=cpu", "train.batch_size=2",
            "train.eval_batch_size=2", "--steps", "2", "--batches", "1", "--out", str(out)]
    assert reference_compare.main(args) == 0
    data = json.loads(out.read_text())["settings"]
    assert list(data) == ["reference", "batch_max", "bucketed", "snlu"]
    ref, snlu = data["reference"], data["snlu"]
    assert ref["fixed_padding"] and ref["dropout_everywhere"] and not ref["bucketing"] and not ref["no_grad"]
    assert snlu["bucketing"] and snlu["no_grad"] and not snlu["fixed_padding"] and not snlu["dropout_everywhere"]
    assert (ref["max_frames"], ref["max_chars"]) == (1468, 50)
    for mode, n in (("train", 2), ("infer", 1)):
        assert len(ref[mode]["shapes"]) == len(snlu[mode]["shapes"]) == n
        assert ref[mode]["utterances"] == snlu[mode]["utterances"] == 2 * n  # the same utterances
        for s in ref[mode]["shapes"]:
            assert s["feats"][1] == 1468 and s["char_ids"][1] == 50 and s["piece_tags"][1] == 50
            assert s["input_ids"][1] == 52 and s["pool"][1:] == [50, 50]
        for s in snlu[mode]["shapes"]:  # padded to the batch's longest only (demo utterances are short)
            assert s["feats"][1] < 1468 and s["char_ids"][1] < 50 and s["input_ids"][1] == s["piece_tags"][1] + 2
        assert snlu[mode]["frame_padding_efficiency"] > ref[mode]["frame_padding_efficiency"]
        for r in data.values():
            assert r[mode]["utt_per_s"] > 0 and r["speedup_vs_reference"][mode] > 0
            assert r["median_speedup_vs_reference"][mode] > 0
    assert ref["speedup_vs_reference"] == {"train": 1.0, "infer": 1.0}


def test_fixed_padding_leaves_the_model_outputs_on_real_positions_unchanged(tiny, demo_overrides):
    cfg = load_recipe(RECIPE, [*tiny, *demo_overrides, "train.device=cpu"])
    seed_everything(cfg.seed)
    train = DATASETS.build(cfg.data).load()["train"]
    task = TASKS.get(cfg.task.name).cls.from_data(cfg, train).eval()
    batch = task.processor.collate([task.processor.prepare(u) for u in train[:3]])
    padded = reference_compare.pad_fixed(batch, 1468, 50, task.processor.tokenizer.pad_token_id,
                                         task.processor.vocab.stoi["<pad>"])
    assert padded["feats"].shape[1] == 1468 and padded["input_ids"].shape[1] == 52
    assert torch.equal(padded["feat_lengths"], batch["feat_lengths"])
    with torch.no_grad():
        features, mask, terms = task(batch, with_losses=True)
        features_p, mask_p, terms_p = task(padded, with_losses=True)
    p = features.shape[1]
    assert torch.equal(mask_p[:, :p], mask) and not mask_p[:, p:].any()
    torch.testing.assert_close(features_p[:, :p][mask], features[mask], rtol=1e-4, atol=1e-4)
    assert terms_p.keys() == terms.keys()
    for k in terms:
        assert terms_p[k].item() == pytest.approx(terms[k].item(), rel=1e-4, abs=1e-4), k
    assert task.predict(padded) == task.predict(batch)
