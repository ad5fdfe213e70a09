"""The documentation holds together: README.md stays a short front door (at most 250 lines), and every
relative link in README.md and docs/*.md — to a file, an image, or a heading (``file.md#anchor``) —
points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Guides written in parallel with the README's documentation list: a link to one may go ahead of the file.
PENDING = {ROOT / "docs" / name for name in ("testing.md", "speech.md", "units.md")}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (whose brackets are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: text only, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page (a repeated heading gets -1, -2 ... as on GitHub)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    seen: dict[str, int] = {}
    out = set()
    for line in text.splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(prose(page.read_text(encoding="utf-8")))]


def test_readme_is_at_most_250_lines():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= 250, f"README.md has {n} lines: move a topic to docs/"


def test_the_checker_sees_links_and_anchors():
    # (so that the next test cannot pass by finding nothing)
    readme = links(ROOT / "README.md")
    assert "docs/recipes.md" in readme and "docs/performance.md#why-not-lhotse" in readme
    assert "images/sweep_demo.png" in links(ROOT / "docs" / "experiments.md")
    assert {"the-model-spoken_ner", "overrides-and-inheritance"} <= anchors(ROOT / "docs" / "recipes.md")
    assert slug("Scale: memory, data loading, and why not Lhotse") == "scale-memory-data-loading-and-why-not-lhotse"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if dest in PENDING and not dest.exists():
            continue
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_plugin_guides_fusion_with_options_keeps_the_contract(tmp_path, monkeypatch):
    """docs/plugins.md's ``gate`` fusion (a config dataclass) is real code: it loads and passes check_fusion."""
    from snlu.plugins import LOADED, load_builtins, load_plugins
    from snlu.registry import FUSIONS
    from snlu.testing import check_fusion

    load_builtins()
    monkeypatch.setattr(FUSIONS, "_entries", dict(FUSIONS._entries))  # "gate" is gone after the test

    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    code = guide.split("```python\n# my_fusion.py", 1)[1].split("```", 1)[0]
    (tmp_path / "my_fusion.py").write_text(code, encoding="utf-8")
    loaded = dict(LOADED)
    try:
        load_plugins(["my_fusion.py"], base_dir=tmp_path)
        check_fusion("gate", {"scale": 2.0}, invalid=[{"scale": "big"}])
    finally:
        LOADED.clear()
        LOADED.update(loaded)


def block(page: str, start: str) -> str:
    """The fenced code block of ``docs/<page>`` whose first line starts with ``start``, exactly as printed."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    found = re.search(rf"^```\w*\n({re.escape(start)}.*?)^```", text, flags=re.S | re.M)
    assert found, f"docs/{page}: no code block starting with {start!r}"
    return found.group(1)


@pytest.mark.timeout(900)
def test_the_task_guides_worked_example_trains_predicts_and_scores(tmp_path, monkeypatch, demo_dir):
    """docs/tasks.md's task, head and dataset (``my_task.py``) and recipe (``has_entity.yaml``) are real code: the
    recipe validates (a bad data.dir is one line), trains one epoch, and its test accuracy is that of the
    predictions it wrote; snlu.load gives them again."""
    import json

    import snlu
    import snlu.run
    from snlu.core.errors import ConfigError
    from snlu.plugins import LOADED, load_builtins
    from snlu.registry import DATASETS, HEADS, TASKS

    load_builtins()
    for registry in (DATASETS, HEADS, TASKS):  # what the example registers is gone after the test
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    (tmp_path / "my_task.py").write_text(block("tasks.md", "# my_task.py"), encoding="utf-8")
    recipe = tmp_path / "has_entity.yaml"
    recipe.write_text(block("tasks.md", "# has_entity.yaml"), encoding="utf-8")
    loaded = dict(LOADED)
    try:
        with pytest.raises(ConfigError, match=rf"^data\.dir: no train\.jsonl in '{re.escape(str(tmp_path))}/nowhere'$"):
            snlu.run.load(recipe, [f"data.dir={tmp_path}/nowhere"])
        cfg = snlu.run.load(recipe, [f"data.dir={demo_dir}", "train.epochs=1", "train.batch_size=4",
                                     "train.num_workers=0"])
        run = tmp_path / "run"
        metrics = snlu.run.start(cfg, recipe, run)
        model = snlu.load(run, device="cpu")
    finally:
        LOADED.clear()
        LOADED.update(loaded)
    lines = [json.loads(x) for x in (run / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    gold = [bool(x["entity"]) for x in lines]
    assert len(lines) == 4 and all(isinstance(x["has_entity"], bool) for x in lines)
    assert metrics["test"]["accuracy"] == sum(g == x["has_entity"] for g, x in zip(gold, lines)) / len(lines)
    assert [model.predict(text=x["sentence"]) for x in lines] == [x["has_entity"] for x in lines]
