"""Waveform augmentation in the training loader: each utterance's draws are a function of (seed, epoch, index),
so the batches are the same with or without worker processes and when an epoch is resumed midway; dev and test
(the evaluation loader) are never augmented; a run records its ``augment`` list and says when the feature cache
cannot serve the training split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from snlu.augment.chain import build_chain
from snlu.cli.train import main
from snlu.config import load_recipe
from snlu.data import batching
from snlu.data.audio import read_wav
from snlu.data.batching import make_loader
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.registry import AUGMENTATIONS, TASKS

RECIPE = Path(__file__).parents[2] / "recipes" / "asr_pretrain.yaml"
AUGMENT = "augment=[{name: speed, factors: [0.9, 1.1]}, {name: noise, prob: 0.5}]"


def asr_processor(demo_overrides, tiny):
    cfg = load_recipe(RECIPE, [*tiny, *demo_overrides])
    train = read_cnerta(cfg.data.train, AudioIndex(cfg.data.audio_dir))
    return TASKS.get("asr").cls.from_data(cfg, train).processor, train


def epoch_feats(loader, epoch: int, start: int = 0) -> list[torch.Tensor]:
    loader.batch_sampler.set_epoch(epoch, start)
    return [f for batch in loader for f, n in zip(batch["feats"], batch["feat_lengths"]) for f in [f[:n]]]


def test_draws_follow_seed_epoch_and_index_whatever_the_workers(demo_overrides, tiny):
    processor, train = asr_processor(demo_overrides, tiny)
    chain = build_chain([AUGMENTATIONS.config("speed", factors=[0.9, 1.1]), AUGMENTATIONS.config("noise", prob=0.5)])

    def loader(workers: int):
        return make_loader(train, processor, 2, 4, True, workers, seed=5, augment=chain)

    serial, parallel = loader(0), loader(2)
    one = epoch_feats(serial, 1)
    assert all(torch.equal(a, b) for a, b in zip(one, epoch_feats(parallel, 1)))
    assert all(torch.equal(a, b) for a, b in zip(one[4:], epoch_feats(serial, 1, start=2)))  # resumed at batch 2
    # each item is the frontend's features of chain(wave, generator(seed, epoch, index)): recomputed here
    order = [i for b in serial.batch_sampler.batches() for i in b]
    for i, feats in zip(order, one):
        wave = chain(read_wav(train[i].audio), np.random.default_rng([5, 1, i]))
        assert torch.equal(feats, processor.audio.frontend.featurize(wave))
    clean = {i: processor.audio.frontend.featurize(read_wav(train[i].audio)).shape[0] for i in order}
    assert all(f.shape[0] != clean[i] for i, f in zip(order, one))  # every utterance was sped up or slowed down
    two = dict(zip([i for b in serial.batch_sampler.batches() for i in b], epoch_feats(serial, 2)))
    assert any(two[i].shape != f.shape or not torch.equal(two[i], f) for i, f in zip(order, one))  # drawn anew


def test_a_run_augments_the_training_split_only(tmp_path, tiny, demo_overrides, demo_dir, monkeypatch):
    seen: list[str] = []
    original = batching.AugmentedDataset.__getitem__

    def spy(self, key):
        seen.append(self.utts[key[1]].where)
        return original(self, key)

    monkeypatch.setattr(batching.AugmentedDataset, "__getitem__", spy)
    run = tmp_path / "run"
    features = tmp_path / "features"
    assert main([str(RECIPE), *tiny, *demo_overrides, AUGMENT, f"data.feature_cache={features}",
                 "--output-dir", str(run)]) == 0
    train_lines = len((demo_dir / "train.jsonl").read_text().splitlines())
    assert len(seen) == train_lines and all(w.startswith(f"{demo_dir / 'train.jsonl'}:") for w in seen)
    saved = OmegaConf.load(run / "config.yaml").augment
    assert [a.name for a in saved] == ["speed", "noise"] and list(saved[0].factors) == [0.9, 1.1]
    log = (run / "train.log").read_text()
    assert log.count("augment: speed(factors 0.9/1.1), noise(p 0.5, SNR 10-30 dB), on the training waveforms: the "
                     "training split is read from its audio, not the feature cache (dev and test still are)") == 1
