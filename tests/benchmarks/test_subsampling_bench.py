"""benchmarks/subsampling.py and subsampling_step.py: every candidate formulation of the subsampling front is
checked against the plain module before it is timed (and a wrong one is caught), the JSON holds each
candidate's timings, and the whole-step A/B leaves the module's forward as it found it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch

from snlu.encoders.subsampling import Conv2dSubsampling

ROOT = Path(__file__).parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = load("subsampling")


def test_every_candidate_is_exact_and_a_wrong_one_is_caught():
    torch.manual_seed(0)
    module = Conv2dSubsampling(40, 256)
    feats = torch.randn(2, 23, 40)
    for name, fn in bench.CANDIDATES.items():
        errors = bench.max_rel_errors(fn, module, feats)
        assert set(errors) == {"output", "conv.0.weight", "conv.0.bias", "conv.2.weight", "conv.2.bias",
                               "out.weight", "out.bias"}
        assert max(errors.values()) < 1e-9, name

    def unpermuted(m, x):  # the classic slip: the Linear's columns left in (C, F') order
        y = bench.first_conv(x, m.conv[0]).permute(0, 3, 1, 2)
        y = torch.relu(torch.nn.functional.conv2d(y, m.conv[2].weight, m.conv[2].bias, 2)).permute(0, 2, 3, 1)
        return m.out(y.reshape(y.shape[0], y.shape[1], -1))

    assert bench.max_rel_errors(unpermuted, module, feats)["output"] > 1e-3


def test_the_benchmark_writes_every_candidates_timings(tmp_path):
    out = tmp_path / "s.json"
    assert bench.main(["--frames", "15", "--bins", "40", "--batch", "2", "--repeats", "2", "--threads", "1",
                       "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["exact"] == list(bench.CANDIDATES)
    (result,) = data["results"]
    assert (result["batch"], result["frames"], result["bins"]) == (2, 15, 40)
    for mode in ("train", "infer"):
        assert set(result[mode]) == set(bench.CANDIDATES)
        assert result[mode]["plain"]["speedup_vs_plain"] == 1.0
        for r in result[mode].values():
            assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["median_page_faults"] >= 0


def test_the_whole_step_ab_times_both_variants_and_restores_the_forward(tmp_path, tiny, demo_overrides):
    step = load("subsampling_step")
    forward = Conv2dSubsampling.forward
    out = tmp_path / "step.json"
    args = [*tiny, *demo_overrides, "train.device=cpu", "train.batch_size=2", "--steps", "2", "--batches", "1",
            "--out", str(out)]
    assert step.main(args) == 0
    assert Conv2dSubsampling.forward is forward
    data = json.loads(out.read_text())
    assert data["train"]["plain"]["n"] == data["train"]["snlu"]["n"] == 2
    assert data["infer"]["plain"]["n"] == data["infer"]["snlu"]["n"] == 1
    assert data["train"]["speedup_median"] > 0
