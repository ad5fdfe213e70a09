"""Sweep files are validated like recipes: a config dataclass (SweepFile) with errors naming the key, and every
variant's recipe through the checks snlu-train runs before reading data (snlu.run.load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snlu.core.errors import ConfigError
from snlu.experiments.sweep_file import load_sweep, validate

RECIPES = Path(__file__).parents[2] / "recipes"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text.replace("RECIPES", str(RECIPES)))
    return path


@pytest.mark.parametrize("text, message", [
    ("recipe: RECIPES/text_only.yaml\nseeds: [1, x]\n", r"sweep.yaml: seeds\[1\]: wrong type"),
    ("recipe: RECIPES/text_only.yaml\nseeds: 3\n", r"sweep.yaml: seeds: wrong type"),
    ("recipe: RECIPES/text_only.yaml\nvariants: [a, b]\n", r"sweep.yaml: variants: wrong type"),
    ("recipe: RECIPES/text_only.yaml\nvariants: {a: {recipe: [x]}}\n", r"sweep.yaml: variants.a.recipe: wrong type"),
    ("recipe: RECIPES/text_only.yaml\ngrid: [{train.epochs: [1]}, 3]\n", r"grid\[1\]: expected a mapping"),
    ("recipe: RECIPES/text_only.yaml\nvariants: {a: {overrides: [epochs]}}\n",
     r"variants.a.overrides: expected a list of key=value"),
    ("[1, 2]\n", r"sweep.yaml: a recipe must be a mapping of sections"),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write(tmp_path, text))


def test_a_variant_with_no_options_and_defaults(tmp_path):
    sweep = load_sweep(write(tmp_path, "recipe: RECIPES/text_only.yaml\nvariants: {plain: null, also: {}}\n"))
    assert [v.name for v in sweep.variants] == ["plain", "also"] and sweep.seeds == [1, 2, 3]
    assert all(v.recipe == (RECIPES / "text_only.yaml").resolve() and v.overrides == () for v in sweep.variants)


def test_variants_go_through_the_checks_before_data(tmp_path):
    """A variant whose section falls in a group without a learning rate fails when the sweep is validated,
    before any run starts."""
    text = "recipe: RECIPES/fusion_raw_all.yaml\nvariants:\n  own: {overrides: [optim.groups.fusion=fusion]}\n"
    with pytest.raises(ConfigError, match=r"variant own: optim.lrs.fusion: missing learning rate for parameter "
                                          r"group 'fusion'"):
        validate(load_sweep(write(tmp_path, text)))
