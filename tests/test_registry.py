"""The generic registry: registration, lookup errors with close matches, duplicates naming both modules, and the
base class of each kind (declared before anything registers; a class that is not one refused in one line)."""

from __future__ import annotations

import dataclasses
import sys

import processes
import pytest
import torch
from torch import nn

from snlu.augment.base import Augmentation
from snlu.core.errors import RegistryError
from snlu.data.dataset import Dataset
from snlu.data.vocab import Units
from snlu.fusions.base import Fusion
from snlu.optim.schedulers import Schedule
from snlu.registry import FUSIONS, OPTIMIZERS, REGISTRIES, Registry
from snlu.tasks.base import Task
from snlu.tokenizers.base import AudioTokenizer


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


BASES = {"text_encoders": nn.Module, "audio_frontends": nn.Module, "audio_encoders": nn.Module,
         "audio_tokenizers": AudioTokenizer, "fusions": Fusion, "heads": nn.Module, "losses": nn.Module,
         "tasks": Task, "datasets": Dataset, "optimizers": torch.optim.Optimizer, "schedulers": Schedule,
         "augmentations": Augmentation, "units": Units}


def test_every_kind_knows_its_base_and_every_component_is_one():
    assert set(BASES) == set(REGISTRIES)
    for kind, base in BASES.items():
        assert REGISTRIES[kind].base is base, kind
        assert all(issubclass(entry.cls, base) for entry in REGISTRIES[kind]), kind


def test_a_class_that_is_not_the_base_is_refused_in_one_line():
    class Lookalike(nn.Module):
        """A fusion's forward, but no Fusion."""

    with pytest.raises(RegistryError) as e:
        FUSIONS.register("t_lookalike")(Lookalike)
    assert str(e.value) == (f"fusions: cannot register 't_lookalike': {__name__}."
                            "test_a_class_that_is_not_the_base_is_refused_in_one_line.<locals>.Lookalike is not a "
                            "subclass of snlu.fusions.base.Fusion, the base class of fusions")
    assert "t_lookalike" not in FUSIONS

    def sgd(cfg, groups):  # a factory function is no optimiser class
        return torch.optim.SGD(groups)

    with pytest.raises(RegistryError, match=r"^optimizers: cannot register 'sgd': .*<locals>\.sgd is not a subclass "
                                            r"of torch\.optim\.optimizer\.Optimizer, the base class of optimizers$"):
        OPTIMIZERS.register("sgd")(sgd)
    assert "sgd" not in OPTIMIZERS


def test_a_class_registered_before_the_declaration_is_checked_by_it():
    reg = Registry("widgets", "widget")

    class Widget:
        pass

    reg.register("good")(type("Good", (Widget,), {}))
    reg.register("bad")(type("Bad", (), {"__module__": "early_plugin"}))
    with pytest.raises(RegistryError, match=r"^widgets: cannot register 'bad': early_plugin\.Bad is not a subclass"):
        reg.require(Widget)
    assert reg.names() == ["good"] and reg.base is Widget
    with pytest.raises(RegistryError, match=r"^widgets: base class declared twice"):
        reg.require(object)


def test_each_base_is_declared_before_anything_registers():
    """In a fresh process, every registration of the built-ins finds its registry's base already declared."""
    code = (
        "import importlib, snlu.registry as r\n"
        "real = r.Registry.register\n"
        "def register(self, name, config=r.NoConfig):\n"
        "    assert self.base is not None, f'{self.kind}: {name} registers before the base is declared'\n"
        "    return real(self, name, config)\n"
        "r.Registry.register = register\n"
        "from snlu.plugins import BUILTIN_MODULES\n"
        "for m in BUILTIN_MODULES:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(k for k, reg in r.REGISTRIES.items() if len(reg)))\n"
    )
    r = processes.run([sys.executable, "-c", code], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == str(sorted(REGISTRIES))
