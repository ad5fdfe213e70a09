"""docs/plugins.md, tested as printed: every code block of the guide is taken from the page and run, in a folder
of its own as a user would (the files written under the names their first comment line gives them, the shell
lines run from there), so the guide cannot drift from what snlu does. A block the tests below do not know
fails the first test."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import processes
import pytest

from snlu.cli.train import main as train

ROOT = Path(__file__).parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
KNOWN = {  # (language, start of the first line) of every block, and the test that runs it
    ("python", "# film.py:"): "test_the_one_file_fusion_is_listed_and_trains",
    ("yaml", "# my_recipe.yaml,"): "test_the_one_file_fusion_is_listed_and_trains",
    ("bash", "snlu-list"): "test_the_one_file_fusion_is_listed_and_trains",
    ("python", "# my_fusion.py"): "test_the_fusion_with_options_and_its_recipe",
    ("yaml", "# my_gate.yaml,"): "test_the_fusion_with_options_and_its_recipe",
    ("", "my_plugin/"): "test_the_packaged_form_is_that_of_the_example_plugins",
    ("toml", '[project.entry-points."snlu.plugins"]'): "test_the_packaged_form_is_that_of_the_example_plugins",
    ("python", "# gated_config.py"): "test_the_range_checks_of_a_config",
    ("python", "# tests/test_my_plugin.py,"): "test_the_plugin_test_runs_as_printed",
}


def blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the guide, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]


def block(language: str, first: str) -> str:
    """The one block in ``language`` that starts with ``first``."""
    (text,) = [t for lang, t in blocks() if lang == language and t.startswith(first)]
    return text


def write(folder: Path, language: str, first: str) -> Path:
    """The block saved under the file name its first line gives (``# film.py: ...`` -> film.py)."""
    text = block(language, first)
    name = text.split("\n", 1)[0].lstrip("# ").split(" ")[0].rstrip(":,")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def command(line: str, cwd: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    """A shell line of the guide (``snlu-X ARGS  # comment``) as that command, run from ``cwd``."""
    words = shlex.split(line, comments=True)
    module = words[0].removeprefix("snlu-")
    code = f"import sys; from snlu.cli.{module} import entry; sys.argv[0] = {words[0]!r}; entry()"
    return processes.run([sys.executable, "-c", code, *words[1:], *extra], cwd=cwd, timeout=600)


def test_every_block_of_the_guide_is_tested():
    found = [(lang, text.split("\n", 1)[0]) for lang, text in blocks()]
    assert len(found) == len(KNOWN)
    for lang, first in found:
        assert any(lang == k and first.startswith(f) for k, f in KNOWN), f"untested block: ```{lang} {first}"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_one_file_fusion_is_listed_and_trains(tmp_path, tiny, demo_overrides, monkeypatch, capsys):
    write(tmp_path, "python", "# film.py:")
    write(tmp_path, "yaml", "# my_recipe.yaml,")
    listing, training = [x for x in block("bash", "snlu-list").splitlines() if x.strip()]
    r = command(listing, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("fusions:") and "tasks:" not in r.stdout
    assert "  film           FiLM: the text scaled and shifted by the mean of the real audio frames." in r.stdout
    assert "  raw  " in r.stdout  # beside the built-ins
    bare = command("snlu-list fusions", tmp_path)
    assert " film " not in bare.stdout  # a file plugin is listed only once named

    words = shlex.split(training, comments=True)
    assert words == ["snlu-train", "my_recipe.yaml"]
    monkeypatch.chdir(tmp_path)  # as a user runs it: from the folder of the two files
    run = tmp_path / "run"
    assert train([*words[1:], *tiny, *demo_overrides, "--output-dir", str(run)]) == 0
    assert "name: film" in (run / "best" / "config.yaml").read_text()
    assert str(tmp_path / "film.py") in json.loads((run / "environment.json").read_text())["plugins"]["film.py"][
        "source"]
    assert "INFO recipe fusion_raw_all.yaml: the packaged " in capsys.readouterr().err  # (the defaults: resolved)


def test_the_fusion_with_options_and_its_recipe(tmp_path, capsys, monkeypatch):
    from snlu.plugins import LOADED
    from snlu.registry import FUSIONS
    from snlu.testing import check_fusion

    write(tmp_path, "python", "# my_fusion.py")
    recipe = write(tmp_path, "yaml", "# my_gate.yaml,")
    monkeypatch.setattr(FUSIONS, "_entries", dict(FUSIONS._entries))  # "gate" is gone after the test
    loaded = dict(LOADED)
    try:
        assert train([str(recipe), "--print-config"]) == 0
        config = capsys.readouterr().out
        assert "fusion:\n  name: gate\n  scale: 2.0\n" in config
        check_fusion("gate", {"scale": 2.0}, invalid=[{"scale": "big"}])
    finally:
        LOADED.clear()
        LOADED.update(loaded)


def test_the_packaged_form_is_that_of_the_example_plugins():
    layout = [x.split("#")[0].strip() for x in block("", "my_plugin/").splitlines()[1:]]
    assert layout == ["pyproject.toml", "snlu_my_plugin/__init__.py", "recipes/my_variant.yaml",
                      "tests/test_my_plugin.py", "README.md"]
    table = tomllib.loads(block("toml", '[project.entry-points."snlu.plugins"]'))
    assert table["project"]["entry-points"]["snlu.plugins"] == {"my_plugin": "snlu_my_plugin"}
    for name, module in (("gated_fusion", "snlu_gated_fusion"), ("segment_pool", "snlu_segment_pool")):
        folder = ROOT / "plugins" / name
        pyproject = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
        assert pyproject["project"]["entry-points"]["snlu.plugins"] == {name: module}
        for item in layout:
            pattern = item.replace("snlu_my_plugin", module).replace("my_variant", "*").replace("my_plugin", "*")
            assert list(folder.glob(pattern)), f"plugins/{name}: no {pattern}"


def test_the_range_checks_of_a_config():
    namespace: dict = {}
    exec(compile(block("python", "# gated_config.py"), "gated_config.py", "exec"), namespace)
    config = namespace["GatedConfig"]
    assert config().num_heads == 8
    with pytest.raises(ValueError, match=r"^num_heads: must be > 0, got 0$"):
        config(num_heads=0)
    with pytest.raises(ValueError, match=r"^dropout: "):
        config(dropout=1.5)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_plugin_test_runs_as_printed(tmp_path):
    package = Path(shutil.copytree(ROOT / "plugins" / "gated_fusion", tmp_path / "gated_fusion",
                                   ignore=shutil.ignore_patterns("__pycache__", "tests")))
    test_file = write(package, "python", "# tests/test_my_plugin.py,")
    assert test_file == package / "tests" / "test_my_plugin.py"
    tests = runpy.run_path(str(test_file))
    tests["test_contract"]()
    (tmp_path / "t").mkdir()
    tests["test_recipe_trains_one_epoch"](tmp_path / "t")
    assert json.loads((tmp_path / "t" / "run" / "metrics.json").read_text())["test"]["f1"] >= 0
