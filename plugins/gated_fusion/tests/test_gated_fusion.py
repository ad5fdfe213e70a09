"""snlu-gated-fusion: the fusion keeps snlu's fusion contract, its gate does what it says, and the
plugin's recipe trains one epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import snlu_gated_fusion  # noqa: F401  (registers the fusion "gated")
import torch

from snlu.cli.train import main
from snlu.core.errors import ConfigError
from snlu.registry import FUSIONS
from snlu.testing import check_fusion, tiny_demo_corpus, tiny_overrides

RECIPE = Path(__file__).parents[1] / "recipes" / "fusion_gated_all.yaml"


def test_fusion_contract():
    check_fusion("gated", {"num_heads": 4}, invalid=[{"num_heads": 0}, {"dropout": 1.5}, {"gate_bias": "x"}])


def test_a_closed_gate_passes_the_text_alone():
    """With the gate shut (a very negative bias) the audio is ignored: F = LayerNorm(H_t)."""
    torch.manual_seed(0)
    fusion = FUSIONS.build("gated", 32, 16, 64, 4, config={"num_heads": 4, "gate_bias": -100.0}).eval()
    with torch.no_grad():
        fusion.gate.weight.zero_()
        text, frames = torch.randn(2, 5, 32), torch.randn(2, 9, 16)
        out = fusion(text, torch.ones(2, 5, dtype=torch.bool), frames, torch.ones(2, 9, dtype=torch.bool), None)
        torch.testing.assert_close(out, fusion.norm(text))
        fusion.gate.bias.fill_(100.0)  # wide open: the audio context is added
        out = fusion(text, torch.ones(2, 5, dtype=torch.bool), frames, torch.ones(2, 9, dtype=torch.bool), None)
        assert (out - fusion.norm(text)).abs().max() > 0.1


def test_it_consumes_the_frames_alone_and_checks_its_config():
    assert FUSIONS.get("gated").cls.consumes == ("frames",)
    with pytest.raises(ConfigError, match=r"^fusion.num_heads: must be > 0, got 0$"):
        FUSIONS.config("gated", num_heads=0)


def test_num_heads_must_divide_the_text_size():
    with pytest.raises(ValueError, match="fusion.num_heads: must divide the text hidden size 30"):
        FUSIONS.build("gated", 30, 16, 64, 4, config={"num_heads": 4})


def test_recipe_trains_one_epoch(tmp_path, tmp_path_factory):
    data = tiny_demo_corpus(tmp_path_factory.getbasetemp() / "snlu-tiny-demo")  # shared by the session's tests
    run = tmp_path / "run"
    assert main([str(RECIPE), *tiny_overrides(), *data, "--output-dir", str(run)]) == 0
    assert 0.0 <= json.loads((run / "metrics.json").read_text())["test"]["f1"] <= 1.0
    assert "snlu_gated_fusion" in json.loads((run / "environment.json").read_text())["plugins"]
    assert "name: gated" in (run / "best" / "config.yaml").read_text()
