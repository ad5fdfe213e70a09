"""snlu-segment-pool: the tokenizer keeps snlu's audio-tokenizer contract, pools exactly the documented
segments, and the plugin's recipe trains one epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import snlu_segment_pool  # noqa: F401  (registers the audio tokenizer "segmean")
import torch

from snlu.cli.train import main
from snlu.core.errors import ConfigError
from snlu.registry import AUDIO_TOKENIZERS
from snlu.testing import check_audio_tokenizer, tiny_demo_corpus, tiny_overrides
from snlu.tokenizers.align import ctc_forced_align

RECIPE = Path(__file__).parents[1] / "recipes" / "fusion_tokenized_segmean.yaml"


def test_tokenizer_contract():
    for segment in ("span", "aligned"):
        check_audio_tokenizer("segmean", {"segment": segment}, invalid=[{"segment": "words"}])


def test_it_consumes_frames_and_ctc_logits_and_checks_its_config():
    assert AUDIO_TOKENIZERS.get("segmean").cls.consumes == ("frames", "ctc_logits")
    with pytest.raises(ConfigError, match=r"^audio_tokenizer.segment: expected one of span, aligned, got 'words'$"):
        AUDIO_TOKENIZERS.config("segmean", segment="words")


def inputs():
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 30, 8, generator=g)
    logits = torch.randn(2, 30, 7, generator=g) * 3
    chars = torch.tensor([[1, 2, 3, 3, 4], [5, 6, 1, 1, 1]])
    return frames, torch.tensor([30, 18]), logits, chars, torch.tensor([5, 2])


def test_means_over_the_documented_segments():
    frames, fl, logits, chars, cl = inputs()
    index, feasible = ctc_forced_align(logits.log_softmax(-1), fl, chars, cl)
    assert feasible.all()
    aligned = AUDIO_TOKENIZERS.build("segmean", config={"segment": "aligned"})(frames, fl, logits, chars, cl)
    span = AUDIO_TOKENIZERS.build("segmean")(frames, fl, logits, chars, cl)
    for b in range(2):
        starts = [int((index[b] == j).nonzero()[0]) for j in range(cl[b])]
        bounds = [0, *starts[1:], int(fl[b])]  # the first character also owns the frames before it
        for j in range(cl[b]):
            torch.testing.assert_close(aligned[b, j], frames[b, index[b] == j].mean(0))
            torch.testing.assert_close(span[b, j], frames[b, bounds[j]:bounds[j + 1]].mean(0))
        assert span[b, cl[b]:].abs().sum() == 0  # padded characters: zeros


def test_infeasible_utterance_gets_equal_segments():
    frames, fl, logits, chars, cl = inputs()
    fl = torch.tensor([4, 18])  # 4 frames cannot hold 5 characters with a repeat: 1 frame each, the last none
    out = AUDIO_TOKENIZERS.build("segmean")(frames, fl, logits, chars, cl)
    for j in range(4):
        torch.testing.assert_close(out[0, j], frames[0, j])
    assert out[0, 4].abs().sum() == 0 and torch.isfinite(out).all()


def test_recipe_trains_one_epoch(tmp_path, tmp_path_factory):
    data = tiny_demo_corpus(tmp_path_factory.getbasetemp() / "snlu-tiny-demo")  # shared by the session's tests
    run = tmp_path / "run"
    assert main([str(RECIPE), *tiny_overrides(), *data, "--output-dir", str(run)]) == 0
    assert 0.0 <= json.loads((run / "metrics.json").read_text())["test"]["f1"] <= 1.0
    assert "snlu_segment_pool" in json.loads((run / "environment.json").read_text())["plugins"]
    assert "name: segmean" in (run / "best" / "config.yaml").read_text()
