"""The command line of snlu-train, snlu-sweep and snlu-bench: the recipe (or sweep file) and ``key=value``
overrides anywhere among the options; an option's own value is never an override; a word that is neither
a file nor ``key=value`` is a one-line error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from snlu.cli import bench, sweep, train
from snlu.cli.common import is_override, parse_intermixed, split_positionals
from snlu.core.errors import ConfigError

RECIPES = Path(__file__).parents[2] / "recipes"
TEXT = str(RECIPES / "text_only.yaml")


@pytest.mark.parametrize("word, expected", [
    ("train.epochs=2", True),
    ("optim.lrs.fusion_layer=2e-05", True),
    ("data.train=/data/a=b/train.jsonl", True),  # '=' in the value is the value's
    ("plugins=[my_plugin]", True),
    ("runs/sweeps/s/fusion_layer=2e-05/seed1/config.yaml", False),  # a path with '=' in a folder name
    ("recipes/text_only.yaml", False),
    ("train.epochs", False),
    ("=2", False),
])
def test_is_override(word, expected):
    assert is_override(word) is expected


@pytest.mark.parametrize("argv", [
    [TEXT, "--print-config", "train.epochs=7", "train.batch_size=3"],
    ["--print-config", TEXT, "train.epochs=7", "train.batch_size=3"],
    ["train.epochs=7", "--print-config", "train.batch_size=3", TEXT],
    [TEXT, "train.epochs=7", "--output-dir", "runs/a=b", "train.batch_size=3", "--print-config"],
    ["--output-dir=runs/a=b", TEXT, "train.epochs=7", "--print-config", "train.batch_size=3"],
], ids=["after", "before-recipe", "around", "between", "equals-form"])
def test_train_overrides_anywhere_on_the_line(argv, capsys):
    assert train.main(argv) == 0
    cfg = OmegaConf.create(capsys.readouterr().out)
    assert cfg.train.epochs == 7 and cfg.train.batch_size == 3
    assert cfg.task.name == "text_ner"  # the recipe given, wherever it stood


def test_an_options_value_with_equals_is_not_an_override():
    args = parse_intermixed(train.parser(), [TEXT, "--output-dir", "runs/a=b", "train.epochs=2", "--print-config"])
    assert args.output_dir == "runs/a=b" and args.items == [TEXT, "train.epochs=2"] and args.print_config
    args = parse_intermixed(sweep.parser(), ["--var", "asr_run=runs/x", "S.yaml", "--jobs", "2", "seed=1"])
    assert args.var == ["asr_run=runs/x"] and args.items == ["S.yaml", "seed=1"] and args.jobs == 2
    args = parse_intermixed(bench.parser(), ["A.yaml", "--json", "o=1.json", "train.amp=bf16", "B.yaml"])
    assert args.json == "o=1.json" and split_positionals(args.items, "recipe", most=None) == (
        ["A.yaml", "B.yaml"], ["train.amp=bf16"])


def test_resume_takes_train_epochs_anywhere(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert train.main([TEXT, "--print-config"]) == 0
    (run / "config.yaml").write_text(capsys.readouterr().out)
    assert train.main(["train.epochs=30", "--print-config", "--resume", str(run)]) == 0
    assert OmegaConf.create(capsys.readouterr().out).train.epochs == 30
    with pytest.raises(ConfigError, match=r"'train.batch_size=2': only train.epochs may be overridden"):
        train.main(["--resume", str(run), "--print-config", "train.batch_size=2"])


def error_line(monkeypatch, capsys, prog: str, entry, *argv: str) -> str:
    """``prog ARGV`` through its console entry point: the one stderr line (exit status 2, no traceback)."""
    monkeypatch.setattr(sys, "argv", [prog, *argv])
    with pytest.raises(SystemExit) as e:
        entry()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("argv, expected", [
    ([TEXT, "--print-config", "train.epoch=3"], "error: train.epoch: unknown key; did you mean epochs?"),
    ([TEXT, "--print-config", "train.epochs"],
     "error: 'train.epochs': neither a recipe file nor a key=value override (e.g. train.epochs=2)"),
    (["nonsense", "--print-config", TEXT],
     "error: 'nonsense': neither a recipe file nor a key=value override (e.g. train.epochs=2)"),
    ([TEXT, "--print-config", str(RECIPES / "e2e_ner.yaml")],
     f"error: '{RECIPES / 'e2e_ner.yaml'}': expected a key=value override (e.g. train.epochs=2): one recipe only, "
     f"{TEXT}"),
], ids=["unknown-key", "no-equals", "no-equals-first", "two-recipes"])
def test_train_bad_words_are_one_line(monkeypatch, capsys, argv, expected):
    assert error_line(monkeypatch, capsys, "snlu-train", train.entry, *argv).startswith(expected)


def test_sweep_overrides_between_options(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text(f"recipe: {TEXT}\nseeds: [1]\nvars: {{e: 1}}\noverrides: ['train.epochs={{e}}']\n"
                    "variants:\n  only: {}\n")
    out = tmp_path / "out=1"
    assert sweep.main(["--dry-run", "train.batch_size=3", "--output-dir", str(out), str(path), "--var", "e=4",
                       "seed=9"]) == 0
    text = capsys.readouterr().out
    assert f"{TEXT} train.epochs=4 train.batch_size=3 seed=9 seed=1 --output-dir {out / 'only' / 'seed1'}" in text
    line = error_line(monkeypatch, capsys, "snlu-sweep", sweep.entry, str(path), "--dry-run", "train.epochs")
    assert line == "error: 'train.epochs': neither a sweep file nor a key=value override (e.g. train.epochs=2)"


def test_bench_overrides_after_options_reach_the_recipes():
    # The override after --steps is taken (and checked against the recipe's sections) before any timing.
    with pytest.raises(ConfigError, match="no recipe among .* has section 'audio_encodr'"):
        bench.main([TEXT, "--steps", "2", "audio_encodr.n_blocks=1"])
    with pytest.raises(ConfigError, match="'train.device': neither a recipe file nor a key=value override"):
        bench.main(["--steps", "2", TEXT, "train.device"])
