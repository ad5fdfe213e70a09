"""Plugins: a fusion defined outside snlu/ is registered and used by a recipe; load failures are named."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from snlu.config import load_recipe
from snlu.core.errors import ConfigError, PluginError
from snlu.plugins import LOADED
from snlu.registry import FUSIONS

RAW = Path(__file__).parents[1] / "recipes" / "fusion_raw_all.yaml"

PLUGIN = '''
"""A test plugin: the text states gated by mean-pooled audio."""
import dataclasses
import torch
from torch import nn
from snlu.fusions.base import Fusion
from snlu.registry import FUSIONS


@dataclasses.dataclass
class GateConfig:
    scale: float = 1.0


@FUSIONS.register("{name}", config=GateConfig)
class GateFusion(Fusion):
    """Text gated by the mean audio frame."""

    consumes = ("frames",)

    def __init__(self, cfg, text_dim, audio_dim, intermediate_size, text_heads):
        super().__init__()
        self.gate = nn.Linear(audio_dim, text_dim)
        self.scale = cfg.scale

    def forward(self, text, text_mask, frames, frame_mask, tokens):
        m = frame_mask.unsqueeze(-1).to(frames.dtype)
        pooled = (frames * m).sum(1) / m.sum(1).clamp_min(1)
        return text * torch.sigmoid(self.scale * self.gate(pooled)).unsqueeze(1)
'''


@pytest.fixture(autouse=True)
def restore_registries():
    """Plugins registered here must not leak into other tests."""
    entries, loaded = dict(FUSIONS._entries), dict(LOADED)
    yield
    FUSIONS._entries.clear()
    FUSIONS._entries.update(entries)
    LOADED.clear()
    LOADED.update(loaded)


def recipe(tmp_path, plugin_name: str, fusion: str, extra: str = "") -> str:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        defaults: [{RAW}]
        plugins: [{plugin_name}]
        fusion: {{name: {fusion}{extra}}}
        """))
    return str(path)


def test_single_file_plugin_registers_and_trains(tmp_path, tiny, demo_overrides):
    (tmp_path / "gate_plugin.py").write_text(PLUGIN.replace("{name}", "gate_test"))
    cfg = load_recipe(recipe(tmp_path, "gate_plugin.py", "gate_test", ", scale: 2.0"), tiny + demo_overrides)
    assert cfg.fusion.scale == 2.0 and "gate_test" in FUSIONS
    assert LOADED["gate_plugin.py"]["version"].startswith("sha256:")
    from snlu.run import start

    run = tmp_path / "run"
    assert start(cfg, "r.yaml", str(run))["test"]["f1"] >= 0.0
    env = json.loads((run / "environment.json").read_text())
    assert "gate_plugin.py" in env["plugins"]
    assert json.loads((run / "metrics.json").read_text())["test"]["f1"] >= 0.0
    with pytest.raises(ConfigError, match="fusion.scale: wrong type"):
        load_recipe(recipe(tmp_path, "gate_plugin.py", "gate_test", ", scale: abc"))


def test_broken_and_missing_plugins_are_named(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("import not_a_real_module_xyz\n")
    with pytest.raises(PluginError, match=r"plugin 'broken_plugin.py' .* failed to import: ModuleNotFoundError"):
        load_recipe(recipe(tmp_path, "broken_plugin.py", "raw"))
    with pytest.raises(PluginError, match="plugin 'no_such_plugin_mod' failed to import"):
        load_recipe(recipe(tmp_path, "no_such_plugin_mod", "raw"))


def test_two_plugins_registering_the_same_name(tmp_path):
    (tmp_path / "dup_a.py").write_text(PLUGIN.replace("{name}", "dup_test"))
    (tmp_path / "dup_b.py").write_text(PLUGIN.replace("{name}", "dup_test"))
    load_recipe(recipe(tmp_path, "dup_a.py", "dup_test"))
    msg = r"fusions: name .dup_test. registered twice: by snlu_plugin_dup_a.* snlu_plugin_dup_b"
    with pytest.raises(ConfigError, match=msg):
        load_recipe(recipe(tmp_path, "dup_b.py", "dup_test"))
