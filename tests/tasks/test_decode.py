"""Decoding options are ``predict``'s keyword arguments: each task declares them with their defaults
(``decode_options``), the recipe's ``task`` section sets them for a run, a call may replace them."""

from __future__ import annotations

import inspect

import pytest
from omegaconf import OmegaConf

from snlu.core.errors import SnluError
from snlu.registry import TASKS
from snlu.tasks.asr import ASRTask
from snlu.tasks.e2e_ner import E2ENERTask


@pytest.mark.parametrize("name", TASKS.names())
def test_decode_options_are_the_keyword_arguments_of_predict(name):
    cls = TASKS.get(name).cls
    params = inspect.signature(cls.predict).parameters
    assert {k: p.default for k, p in params.items() if k not in ("self", "batch")} == cls.decode_options


def test_the_declared_options():
    assert ASRTask.decode_options == {"beam_size": 1}
    assert E2ENERTask.decode_options == {"beam_size": 1, "marker_bonus": 0.0}
    assert all(TASKS.get(n).cls.decode_options == {} for n in ("spoken_ner", "text_ner"))


def settings(task_section: dict, overrides: dict | None = None, cls: type = E2ENERTask) -> dict:
    """``decode_settings`` of a task of ``cls`` whose recipe has this ``task`` section (no model is built)."""
    task = cls.__new__(cls)
    task.__dict__["cfg"] = OmegaConf.create({"task": task_section})
    return cls.decode_settings(task, overrides)


def test_recipe_values_then_call_overrides_and_the_config_stays():
    section = {"name": "e2e_ner", "beam_size": 3, "marker_bonus": 0.5}
    assert settings(section) == {"beam_size": 3, "marker_bonus": 0.5}
    assert settings(section, {"marker_bonus": 2}) == {"beam_size": 3, "marker_bonus": 2}  # an int is a float
    assert settings({"name": "e2e_ner"}) == {"beam_size": 1, "marker_bonus": 0.0}  # saved before the options


@pytest.mark.parametrize("overrides, message", [
    ({"beam": 4}, "decoding option 'beam': task 'e2e_ner' has no such option (its options: beam_size, marker_bonus)"),
    ({"beam_size": 2.5}, "decoding option 'beam_size': expected int, got 2.5"),
    ({"beam_size": True}, "decoding option 'beam_size': expected int, got True"),
    ({"marker_bonus": "1"}, "decoding option 'marker_bonus': expected float, got '1'"),
    ({"beam_size": 0}, "decoding option 'beam_size': must be >= 1, got 0"),
])
def test_bad_options_are_one_line_errors(overrides, message):
    with pytest.raises(SnluError) as e:
        settings({"name": "e2e_ner", "beam_size": 1}, overrides)
    assert str(e.value) == message
