"""What spoken_ner computes for its fusion and audio tokenizer: the representations they consume (snlu.tasks.views)
and those an active loss needs, nothing else. A plugin fusion reading the CTC posteriors trains from a recipe
with no task subclass; components that nothing uses are named before any data is read."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.labels import LabelSet
from snlu.data.vocab import CharVocab
from snlu.fusions.base import Fusion
from snlu.losses.multitask import MultitaskLoss
from snlu.registry import FUSIONS, TASKS
from snlu.run import start
from snlu.tasks import spoken_ner
from snlu.tasks.spoken_ner import Wiring
from snlu.tasks.views import FUSION_DEFAULT, AudioViews, consumed
from snlu.testing import ContractError, check_fusion
from snlu.tokenizers.align import ctc_forced_align

HERE = Path(__file__).parent
RECIPES = HERE.parents[1] / "recipes"


def build(recipe: Path, overrides: list[str], demo_dir: Path):
    cfg = load_recipe(recipe, overrides)
    utts = read_cnerta(demo_dir / "train.jsonl", AudioIndex(demo_dir / "wav"))
    task = TASKS.get("spoken_ner").cls.from_data(cfg, utts)
    batch = task.processor.collate([task.processor.prepare(u) for u in utts[:3]])
    return task, batch


def calls(task) -> Counter:
    """Counts the forward calls of the CTC head and the audio tokenizer."""
    seen: Counter = Counter()
    for name in ("ctc_head", "audio_tokenizer"):
        getattr(task, name).register_forward_hook(lambda *_, n=name: seen.update([n]))
    return seen


def test_the_plugin_fusion_keeps_the_contract(demo_overrides):
    load_recipe(HERE / "ctc_pool.yaml", demo_overrides)  # registers the plugin's fusion
    check_fusion("ctc_pool")


def test_a_fusion_reading_ctc_posteriors_trains_without_a_task_subclass(tmp_path, tiny, demo_overrides, demo_dir):
    cfg = load_recipe(HERE / "ctc_pool.yaml", [*tiny, *demo_overrides])
    assert TASKS.get(cfg.task.name).cls is TASKS.get("spoken_ner").cls
    metrics = start(cfg, HERE / "ctc_pool.yaml", tmp_path / "run")
    assert 0.0 <= metrics["test"]["f1"] <= 1.0
    assert "name: ctc_pool" in (tmp_path / "run" / "best" / "config.yaml").read_text()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert set(history[0]["terms"]) == {"ctc", "audio_crf", "text_crf"}
    task, batch = build(HERE / "ctc_pool.yaml", [*tiny, *demo_overrides], demo_dir)
    seen = calls(task)
    task.eval()
    with torch.no_grad():
        task.predict(batch)
    assert seen == {"ctc_head": 1}  # the posteriors need the CTC head; no tokenizer at inference


def test_only_what_is_consumed_or_needed_by_a_loss_is_computed(tiny, demo_overrides, demo_dir):
    task, batch = build(RECIPES / "fusion_raw_all.yaml", [*tiny, *demo_overrides], demo_dir)
    seen = calls(task)
    task.eval()
    with torch.no_grad():
        task.predict(batch)
    assert seen == {}  # raw fusion at inference: frames only, no CTC head, no tokenizer
    task.train()
    task.training_step(batch)
    assert seen == {"ctc_head": 1, "audio_tokenizer": 1}  # the CTC loss and the audio CRF loss
    off = load_recipe(RECIPES / "fusion_raw_all.yaml", [*tiny, *demo_overrides, "loss.audio_crf_coef=0",
                                                        "loss.ctc_coef=0"])
    task.wiring = Wiring.of(off, task.component_classes(off))
    assert task.training_step(batch)[1].keys() == {"text_crf"}
    assert seen == {"ctc_head": 1, "audio_tokenizer": 1}  # no loss needs them: neither runs

    tokenized, batch = build(RECIPES / "fusion_tokenized_all.yaml", [*tiny, *demo_overrides], demo_dir)
    seen = calls(tokenized)
    tokenized.eval()
    with torch.no_grad():
        tokenized.predict(batch)
    assert seen == {"ctc_head": 1, "audio_tokenizer": 1}  # the tokens need the tokenizer, which needs the logits


def test_the_recipe_is_read_once_per_check_and_per_build(monkeypatch, tiny, demo_overrides, demo_dir):
    """Loading a recipe checks what each component consumes once and builds no loss; building the model looks
    the fusion up once, checks each consumption once and builds the loss once."""
    seen: Counter = Counter()
    get, check, loss_init = FUSIONS.get, spoken_ner.check_consumes, MultitaskLoss.__init__

    def counted(name, real):
        def call(*args, **kwargs):
            seen.update([name if name != "consumes" else f"consumes {args[0]}"])
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(FUSIONS, "get", counted("fusion lookup", get))
    monkeypatch.setattr(spoken_ner, "check_consumes", counted("consumes", check))
    monkeypatch.setattr(MultitaskLoss, "__init__", counted("loss built", loss_init))
    cfg = load_recipe(RECIPES / "fusion_tokenized_all.yaml", [*tiny, *demo_overrides])
    assert seen == {"consumes fusion": 1, "consumes audio_tokenizer": 1, "fusion lookup": 2}  # (validation, check)
    seen.clear()
    task = spoken_ner.SpokenNERTask(cfg, CharVocab.build(["北京"]), LabelSet.from_types({"LOC"}), load_weights=False)
    assert seen == {"consumes fusion": 1, "consumes audio_tokenizer": 1, "fusion lookup": 1, "loss built": 1}
    assert task.wiring == spoken_ner.Wiring(("tokens",), ("frames", "ctc_logits"), frozenset(spoken_ner.TERMS))


def test_views_are_what_they_say(tiny, demo_overrides, demo_dir):
    task, batch = build(RECIPES / "fusion_raw_dpmask.yaml", [*tiny, *demo_overrides], demo_dir)
    task.eval()
    with torch.no_grad():
        feats = task.frontend(batch["feats"], batch["feat_lengths"])
        frames, lengths = task.audio_encoder(feats, batch["feat_lengths"])
        views = AudioViews(task, batch, frames, lengths)
        assert views.alignment is views.alignment and views.computed == ["frames", "ctc_logits", "alignment"]
        logits = task.ctc_head(frames)
        torch.testing.assert_close(views.ctc_posteriors, logits.softmax(-1))
        expected, _ = ctc_forced_align(logits.log_softmax(-1), lengths, batch["char_ids"], batch["char_lengths"])
        assert torch.equal(views.alignment, expected)
        chars = task.audio_tokenizer(frames, lengths, logits, batch["char_ids"], batch["char_lengths"])
        torch.testing.assert_close(views.tokens, batch["pool"] @ chars)
        assert views.frame_mask.sum(1).tolist() == lengths.tolist()


def test_consumes_is_the_nearest_declaration():
    class Frames(Fusion):
        consumes = ("frames",)

    class FramesSub(Frames):
        pass

    class Aligned(Frames):
        consumes = ("frames", "alignment")

    class Plain(nn.Module):
        pass

    assert consumed(Frames, FUSION_DEFAULT) == ("frames",) == consumed(FramesSub(), FUSION_DEFAULT)
    assert consumed(Aligned, FUSION_DEFAULT) == ("frames", "alignment")
    assert consumed(Fusion, FUSION_DEFAULT) == ("tokens",) == consumed(Plain, FUSION_DEFAULT)


@pytest.fixture
def scratch_fusions():
    saved = dict(FUSIONS._entries)
    yield
    FUSIONS._entries.clear()
    FUSIONS._entries.update(saved)


def test_a_representation_not_offered_is_refused(scratch_fusions):
    @FUSIONS.register("t_probs")
    class Probs(Fusion):
        """Asks for a name the task does not offer."""

        consumes = ("ctc_probs",)

        def __init__(self, cfg, text_dim, audio_dim, intermediate_size, text_heads):
            super().__init__()

    with pytest.raises(ConfigError, match=r"^fusion.name: .*Probs consumes 'ctc_probs', which the spoken_ner task "
                                          r"does not offer here \(offered: frames, ctc_logits, ctc_posteriors"):
        load_recipe(RECIPES / "fusion_raw_all.yaml", ["fusion={name: t_probs}"])
    with pytest.raises(ContractError, match="consumes 'ctc_probs'"):
        check_fusion("t_probs")

    @FUSIONS.register("t_ignores")
    class Ignores(Fusion):
        """Says it reads the posteriors, then does not."""

        consumes = ("frames", "ctc_posteriors")

        def __init__(self, cfg, text_dim, audio_dim, intermediate_size, text_heads):
            super().__init__()
            self.proj = nn.Linear(audio_dim, text_dim)

        def forward(self, text, text_mask, frames, frame_mask, tokens, ctc_posteriors):
            m = frame_mask.unsqueeze(-1).to(frames.dtype)
            return text + self.proj((frames * m).sum(1) / m.sum(1)).unsqueeze(1)

    with pytest.raises(ContractError, match="the output does not depend on the ctc posteriors it consumes"):
        check_fusion("t_ignores")


def test_inert_components_are_named_before_any_data(caplog):
    with caplog.at_level(logging.WARNING, logger="snlu"):
        load_recipe(RECIPES / "fusion_raw_all.yaml", [])
        assert not caplog.records  # the reference recipe uses everything
        load_recipe(RECIPES / "fusion_raw_all.yaml", ["loss.audio_crf_coef=0"])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "audio_tokenizer: inert, never run: nothing consumes its tokens (fusion 'raw' consumes frames; "
        "loss.audio_crf_coef is 0)",
        "audio_head: inert, never trained: the audio CRF loss is off (loss.audio_crf_coef is 0)",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="snlu"):
        load_recipe(RECIPES / "fusion_raw_all.yaml", ["loss.audio_crf_coef=0", "loss.ctc_coef=0"])
        load_recipe(RECIPES / "fusion_tokenized_all.yaml", ["loss.audio_crf_coef=0", "loss.ctc_coef=0"])
    messages = [r.getMessage() for r in caplog.records]
    assert "ctc_head: inert, never run: loss.ctc_coef is 0 and nothing consumes the CTC outputs" == messages[2]
    assert len(messages) == 4 and messages[3].startswith("audio_head: inert")  # tokenized: the tokens need CTC
