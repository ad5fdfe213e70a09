"""The same recipe and seed on CPU give the same run, bit for bit; a run records how it was produced."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from snlu.cli.train import main

RECIPE = Path(__file__).parents[2] / "recipes" / "fusion_raw_all.yaml"
TIMING = ("seconds", "utt_per_s")  # wall-clock: the only numbers allowed to differ


def train(run: Path, tiny: list[str], demo_overrides: list[str]) -> Path:
    # the same seed, a non-default one, and learning rates high enough that the weights really move
    assert main([str(RECIPE), *tiny, *demo_overrides, "seed=7", "optim.lrs.textual_crf=1e-2",
                 "optim.lrs.audio_encoder=1e-3", "--output-dir", str(run)]) == 0
    return run


def test_two_identical_cpu_runs_are_identical(tmp_path, tiny, demo_overrides):
    a = train(tmp_path / "a", tiny, demo_overrides)
    b = train(tmp_path / "b", tiny, demo_overrides)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (a, b))
    ma.pop("minutes"), mb.pop("minutes")
    assert ma == mb
    ha, hb = (json.loads((r / "history.json").read_text()) for r in (a, b))
    for ra, rb in zip(ha, hb):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}
    wa, wb = (load_file(str(r / "best" / "model.safetensors")) for r in (a, b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert (a / "test_predictions.jsonl").read_text() == (b / "test_predictions.jsonl").read_text()

    env = json.loads((a / "environment.json").read_text())
    assert env["seed"] == 7
    for key in ("command", "plugins", "packages", "python", "platform", "cpu", "cuda", "git_commit", "git_dirty"):
        assert key in env, key
    assert env["packages"]["torch"] == torch.__version__.split("+")[0]
    assert "tensorboard" in env["packages"] and "snlu" in env["packages"]
    cfg = (a / "config.yaml").read_text()
    assert "seed: 7" in cfg and "deterministic: false" in cfg  # the resolved recipe, every default filled in
