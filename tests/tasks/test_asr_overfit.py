"""The ``asr`` task on its own: a tiny model overfits one utterance, and both decoders (best path and prefix
beam search, ``task.beam_size``) then read its transcript back with a CER of 0; the shipped recipe's own model
(9 pre-norm blocks, SpecAugment, dropout, its optimiser and warm-up) memorises a handful of utterances."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snlu.config import load_recipe
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.inference import predict_utterances
from snlu.registry import TASKS

RECIPE = Path(__file__).parents[2] / "recipes" / "asr_pretrain.yaml"
SMALL = ["frontend.num_mel_bins=20", "frontend.specaug.enabled=false", "audio_encoder.n_blocks=1",
         "audio_encoder.d_model=32", "audio_encoder.ffn_dim=128", "audio_encoder.dropout=0"]


def test_tiny_overfit_decodes_with_zero_cer(demo_dir, demo_overrides):
    train = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))
    utts = [min(train, key=lambda u: u.duration)]  # the shortest: quickest to memorise
    cfg = load_recipe(RECIPE, [*demo_overrides, *SMALL])
    torch.manual_seed(0)
    task = TASKS.get("asr").cls.from_data(cfg, utts)
    batch = task.processor.collate([task.processor.prepare(u) for u in utts])
    before = task.evaluate(utts, predict_utterances(task, utts, 1, "cpu", progress=False))
    assert before["cer"] > 0.5 and before["chars"] == len(utts[0].sentence)
    optimizer = torch.optim.Adam(task.parameters(), lr=5e-3)
    for step in range(150):
        task.train()
        loss, terms = task.training_step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9 and task.evaluate(utts, predict_utterances(task, utts, 1, "cpu", progress=False))["cer"] == 0:
            break
    greedy = predict_utterances(task, utts, 1, "cpu", progress=False)
    n = len(utts[0].sentence)
    assert greedy == [utts[0].sentence] and task.evaluate(utts, greedy) == {
        "cer": 0.0, "errors": 0, "chars": n, "syllable_er_tonal": 0.0, "syllable_er_toneless": 0.0, "syllables": n}
    task.cfg.task.beam_size = 4
    assert predict_utterances(task, utts, 1, "cpu", progress=False) == [utts[0].sentence]


def test_tiny_model_learns_a_handful_of_utterances(demo_dir, demo_overrides):
    """Learning, not only running: four synthetic utterances, the recipe's optimiser and a warm-up schedule
    (both built from the recipe's registries), CER from 1.0 down to <= 5 % within 200 steps."""
    from snlu.optim.build import build_optimizer, build_scheduler

    utts = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))[:4]
    cfg = load_recipe(RECIPE, [*demo_overrides, "audio_encoder.n_blocks=1", "audio_encoder.d_model=64",
                               "audio_encoder.ffn_dim=128", "frontend.specaug.enabled=false", "audio_encoder.dropout=0",
                               "optim.lrs.audio_encoder=5e-3",
                               "scheduler={name: warmup_linear, warmup_steps: 10, min_ratio: 0.1}"])
    torch.manual_seed(0)
    task = TASKS.get("asr").cls.from_data(cfg, utts)
    batch = task.processor.collate([task.processor.prepare(u) for u in utts])
    optimizer = build_optimizer(task, cfg.optim)
    schedule, scheduler = build_scheduler(optimizer, cfg.scheduler)
    schedule.set_total(200)

    def score() -> float:
        return task.evaluate(utts, predict_utterances(task, utts, 4, "cpu", progress=False))["cer"]

    first = score()
    for step in range(200):
        task.train()
        loss, _ = task.training_step(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), cfg.optim.max_grad_norm)
        optimizer.step()
        scheduler.step()
        if step % 25 == 24 and score() <= 0.05:
            break
    assert first > 0.8 and score() <= 0.05


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_shipped_recipe_overfits_a_handful_of_utterances(demo_dir, demo_overrides):
    """recipes/asr_pretrain.yaml as shipped (model, SpecAugment, dropout, AdamW + Noam peak 1e-3), a 40-step
    warm-up: its four shortest training utterances, one batch, from CER 1 to <= 0.2 within 150 steps (measured: 0.19
    after 75 steps, 0.06 after 100; with the reference's post-norm blocks instead, 0.97 after 150: CTC's plateau)."""
    from snlu.optim.build import build_optimizer, build_scheduler

    cfg = load_recipe(RECIPE, [*demo_overrides, "scheduler.warmup_steps=40"])
    assert cfg.audio_encoder.norm_first and cfg.audio_encoder.n_blocks == 9 and cfg.frontend.specaug.enabled
    train = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))
    utts = sorted(train, key=lambda u: u.duration)[:4]
    torch.manual_seed(0)
    task = TASKS.get("asr").cls.from_data(cfg, utts)
    batch = task.processor.collate([task.processor.prepare(u) for u in utts])
    optimizer = build_optimizer(task, cfg.optim)
    schedule, scheduler = build_scheduler(optimizer, cfg.scheduler)
    schedule.set_total(150)

    def score() -> float:
        return task.evaluate(utts, predict_utterances(task, utts, 4, "cpu", progress=False))["cer"]

    first, scores = score(), []
    for step in range(1, 151):
        task.train()
        loss, _ = task.training_step(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), cfg.optim.max_grad_norm)
        optimizer.step()
        scheduler.step()
        if step % 25 == 0:
            scores.append(score())
            if scores[-1] <= 0.2:
                break
    assert first > 0.8 and scores[-1] <= 0.2, scores
