"""The generic registry: registration, lookup errors with close matches, duplicates naming both modules."""

from __future__ import annotations

import dataclasses

import pytest

from snlu.errors import RegistryError
from snlu.registry import FUSIONS, REGISTRIES, Registry


@dataclasses.dataclass
class Cfg:
    size: int = 3


def test_register_build_and_describe():
    reg = Registry("widgets", "widget")

    @reg.register("box", config=Cfg)
    class Box:
        """A box.

        Longer text that snlu-list does not show."""

        def __init__(self, cfg, extra=0):
            self.cfg, self.extra = cfg, extra

    class C:  # any object with .name and the config fields
        name, size = "box", 5

    built = reg.build(C(), extra=2)
    assert isinstance(built, Box) and built.cfg.size == 5 and built.extra == 2
    assert reg.names() == ["box"] and "box" in reg and len(reg) == 1
    assert reg.get("box").description == "A box."
    assert reg.get("box").config is Cfg


def test_unknown_name_lists_close_matches_and_choices():
    with pytest.raises(RegistryError) as e:
        FUSIONS.get("rwa", key="fusion.name")
    msg = str(e.value)
    assert msg.startswith("fusion.name: unknown fusion 'rwa'")
    assert "did you mean 'raw'" in msg and "valid: concat, " in msg  # installed plugins may add names
    assert {"concat", "raw", "tokenized"} <= set(msg.split("valid: ")[1].rstrip(")").split(", "))


def test_duplicate_registration_names_both_modules():
    reg = Registry("widgets", "widget")

    @reg.register("x")
    class A:
        pass

    B = type("A2", (), {"__module__": "other_plugin"})
    with pytest.raises(RegistryError) as e:
        reg.register("x")(B)
    assert "test_registry.test_duplicate_registration_names_both_modules.<locals>.A" in str(e.value)
    assert "other_plugin.A2" in str(e.value)


def test_config_must_be_dataclass():
    with pytest.raises(TypeError):
        Registry("w", "w").register("x", config=dict)


def test_builtins_cover_every_kind():
    expected = {
        "text_encoders": {"bert"},
        "audio_frontends": {"fbank"},
        "audio_encoders": {"transformer", "conformer"},
        "audio_tokenizers": {"all", "dpmask"},
        "fusions": {"raw", "tokenized", "concat"},
        "heads": {"ctc", "crf"},
        "losses": {"multitask"},
        "tasks": {"spoken_ner", "text_ner", "asr", "e2e_ner"},
        "datasets": {"cnerta"},
        "augmentations": {"speed", "noise"},
        "units": {"char", "sentencepiece", "pinyin"},
    }
    for kind, names in expected.items():
        assert names <= set(REGISTRIES[kind].names()), kind
        for entry in REGISTRIES[kind]:
            assert entry.description, f"{kind}/{entry.name} has no docstring"
