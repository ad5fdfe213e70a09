"""``snlu-bench``: FLOP counts against the textbook formula, component timers that leave the model as they
found it, and the whole benchmark on a tiny recipe writing consistent numbers (behaviour, not speed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from snlu.bench.flops import count_flops, matmul_peak
from snlu.bench.timers import ComponentTimers
from snlu.cli.bench import main

RECIPES = Path(__file__).parents[2] / "recipes"


def test_flops_of_a_linear_layer_forward_and_backward():
    b, k, n = 8, 32, 16
    layer = nn.Linear(k, n)
    x = torch.randn(b, k, requires_grad=True)
    assert count_flops(lambda: layer(x)) == 2 * b * k * n
    # backward: gradient of the input (2bkn) and of the weight (2bkn)
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * b * k * n


def test_matmul_peak_is_positive_and_names_its_size():
    peak = matmul_peak(torch.device("cpu"), torch.float32, sizes=(64, 128), min_seconds=0.01)
    assert peak["flops_per_s"] > 0 and peak["size"] in (64, 128)


class Slow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return x + 1

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.01)
        return x.sum()


class Toy(nn.Module):
    components = {"slow": None, "absent": None}

    def __init__(self) -> None:
        super().__init__()
        self.slow = Slow()


def test_component_timers_time_each_method_and_restore_the_module():
    toy = Toy()
    with ComponentTimers(toy, torch.device("cpu")) as timers:
        y = toy.slow(torch.zeros(2))
        toy.slow.loss(y)
    assert timers.calls["slow"] == 2 and timers.seconds["slow"] >= 0.03
    assert "forward" not in vars(toy.slow) and "loss" not in vars(toy.slow)  # class methods again
    assert torch.equal(toy.slow(torch.zeros(1)), torch.ones(1)) and timers.calls["slow"] == 2


def test_bench_on_a_tiny_recipe_writes_consistent_numbers(tmp_path, tiny, demo_overrides):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    args = [str(RECIPES / "fusion_raw_dpmask.yaml"), str(RECIPES / "text_only.yaml"), *tiny, *demo_overrides,
            "train.batch_size=2", "--steps", "2", "--warmup", "1", "--infer-batches", "1", "--json", str(out),
            "--markdown", str(md)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    speech, text = data["results"]["fusion_raw_dpmask"], data["results"]["text_only"]
    assert {"audio_encoder", "audio_tokenizer", "fusion", "text_head", "backward", "optimizer"} <= set(
        speech["breakdown_ms"])
    assert "audio_encoder" not in text["breakdown_ms"] and text["task"] == "text_ner"
    for r in (speech, text):
        assert r["train"]["utt_per_s"] > 0 and r["infer"]["utt_per_s"] > 0
        assert 0 <= r["train"]["data_wait_fraction"] < 1 and 0 < r["padding_efficiency"] <= 1
        assert r["fraction_of_peak"] == pytest.approx(
            r["achieved_gflop_per_s"] / r["matmul_peak"]["gflop_per_s"], rel=0.02)
        assert r["peak_rss_mb"] > 100
    assert speech["gflop_per_step"] > text["gflop_per_step"]  # the speech side adds work
    table = md.read_text()
    assert "| fusion_raw_dpmask |" in table and "| text_only |" in table and "fraction of matmul peak" in table


def test_an_override_no_recipe_has_is_an_error(tiny):
    from snlu.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no recipe among .* has section 'audio_encodr'"):
        main([str(RECIPES / "text_only.yaml"), "audio_encodr.n_blocks=1"])


def test_inference_is_the_users_prediction_routine_under_the_runs_amp(tmp_path, tiny, demo_overrides, monkeypatch):
    """snlu-bench times ``predict_utterances``, what snlu-predict and snlu.load().predict run, and under the
    recipe's train.amp (the old inference column ran task.predict under the trainer's autocast instead)."""
    import snlu.bench.bench as bench_module
    from snlu import inference

    dtypes, calls = [], []

    def recording(task, utts, *args, **kwargs):
        calls.append(len(utts))
        predict = task.predict

        def probe(batch):
            dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
            return predict(batch)

        task.predict = probe
        try:
            return inference.predict_utterances(task, utts, *args, **kwargs)
        finally:
            del task.predict

    monkeypatch.setattr(bench_module, "predict_utterances", recording)
    text_only = [x for x in tiny if not x.startswith("audio_encoder.")]  # (it has no speech side)
    args = [str(RECIPES / "text_only.yaml"), *text_only, *demo_overrides, "train.batch_size=2", "train.amp=bf16",
            "--steps", "2", "--warmup", "0", "--infer-batches", "2", "--json", str(tmp_path / "b.json")]
    assert main(args) == 0
    assert calls == [2, 4]  # the warm-up on the first batch, then the timed utterances of two batches
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert json.loads((tmp_path / "b.json").read_text())["results"]["text_only"]["amp"] == "bfloat16"
