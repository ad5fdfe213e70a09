"""The layering of snlu is a contract, checked on the source: every import of every module under snlu/ (at the
top, inside functions, under ``if TYPE_CHECKING``) is an edge of the module graph, and

- the graph has no cycle;
- ``snlu.core`` (the leaf layer) imports nothing of snlu outside itself;
- a component module (encoders, frontends, fusions, heads, tokenizers, losses, optim, augment) imports only
  ``snlu.registry``, ``snlu.core`` and its own package: never the recipe loader, a task or the trainer;
- ``snlu.data`` imports only ``snlu.registry``, ``snlu.core`` and itself: no component, task or training module;
- the inference side (``snlu.inference``, ``snlu.api``, ``snlu.pipeline``) imports nothing of ``snlu.training``:
  the trainer calls inference, never the other way round (utterances become batches in ``snlu.data``).

The checker itself is tested on small synthetic graphs that break each rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "snlu"
COMPONENTS = ("encoders", "frontends", "fusions", "heads", "tokenizers", "losses", "optim", "augment")
INFERENCE = ("snlu.inference", "snlu.api", "snlu.pipeline")
Graph = dict[str, set[str]]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, modules: set[str]) -> set[str]:
    """The snlu modules that ``source`` imports anywhere in its body. ``from pkg import name`` is an edge to
    ``pkg.name`` when that is a module, else to ``pkg``."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "snlu")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "snlu":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in modules else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"relative import of {node.module}: snlu imports by absolute name")
    return out


def snlu_graph(root: Path = ROOT) -> Graph:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    return {m: imports(p.read_text(encoding="utf-8"), set(files)) - {m} for m, p in files.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(graph: Graph) -> list[str]:
    """Every broken rule, one line each (cycles included)."""
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            if within(m, "snlu.core") and not within(d, "snlu.core"):
                out.append(f"{m} imports {d}: snlu.core imports nothing of snlu")
            for kind in COMPONENTS:
                pkg = f"snlu.{kind}"
                if within(m, pkg) and not any(within(d, ok) for ok in (pkg, "snlu.core", "snlu.registry")):
                    out.append(f"{m} imports {d}: a component depends only on snlu.registry, snlu.core and {pkg}")
            if within(m, "snlu.data") and not any(within(d, ok) for ok in ("snlu.data", "snlu.core", "snlu.registry")):
                out.append(f"{m} imports {d}: snlu.data imports no component, task or training module")
            if any(within(m, i) for i in INFERENCE) and within(d, "snlu.training"):
                out.append(f"{m} imports {d}: inference imports nothing of snlu.training")
    return out


# ----------------------------------------------------------------------------- the contract on snlu itself


def test_the_graph_is_read_from_every_module():
    graph = snlu_graph()
    assert len(graph) > 80
    assert "snlu.core.errors" in graph["snlu.registry"]
    assert "snlu.inference" in graph["snlu.training.trainer"]
    assert "snlu.api" in graph["snlu"]  # a function-local import counts
    assert "snlu.training.checkpoint" in graph["snlu.training.trainer"]  # from snlu.training import checkpoint
    assert "snlu.data.batching" in graph["snlu.inference"]


def test_snlu_keeps_its_layering():
    assert violations(snlu_graph()) == []


# ----------------------------------------------------------------------------- the checker fails on violations

CLEAN: Graph = {
    "snlu.core.errors": set(),
    "snlu.core.schema": {"snlu.core.errors"},
    "snlu.registry": {"snlu.core.schema"},
    "snlu.fusions.base": {"snlu.core.errors"},
    "snlu.fusions.raw": {"snlu.fusions.base", "snlu.registry"},
    "snlu.data.cnerta": {"snlu.registry", "snlu.core.errors"},
    "snlu.config": {"snlu.registry"},
    "snlu.tasks.base": {"snlu.data.cnerta", "snlu.fusions.raw"},
    "snlu.training.trainer": {"snlu.tasks.base", "snlu.inference"},
    "snlu.inference": {"snlu.tasks.base", "snlu.data.cnerta"},
}


def with_edge(src: str, dst: str) -> Graph:
    graph = {m: set(d) for m, d in CLEAN.items()}
    graph.setdefault(src, set()).add(dst)
    return graph


def test_a_clean_graph_passes():
    assert violations(CLEAN) == []


@pytest.mark.parametrize("src, dst, message", [
    ("snlu.registry", "snlu.config", "import cycle: snlu.config <-> snlu.registry"),
    ("snlu.core.errors", "snlu.registry", "snlu.core.errors imports snlu.registry: snlu.core imports nothing"),
    ("snlu.fusions.raw", "snlu.config", "snlu.fusions.raw imports snlu.config: a component depends only on"),
    ("snlu.fusions.base", "snlu.tasks.base", "snlu.fusions.base imports snlu.tasks.base: a component"),
    ("snlu.fusions.base", "snlu.heads.crf", "snlu.fusions.base imports snlu.heads.crf: a component"),
    ("snlu.data.cnerta", "snlu.fusions.raw", "snlu.data.cnerta imports snlu.fusions.raw: snlu.data imports no"),
    ("snlu.data.cnerta", "snlu.training.trainer", "snlu.data.cnerta imports snlu.training.trainer"),
    ("snlu.inference", "snlu.training.batching", "snlu.inference imports snlu.training.batching: inference imports"),
])
def test_each_rule_catches_its_violation(src, dst, message):
    found = violations(with_edge(src, dst))
    assert any(v.startswith(message) for v in found), found


def test_function_local_and_type_checking_imports_are_edges(tmp_path):
    pkg = tmp_path / "snlu"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def f():\n    from snlu.b import g\n    return g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from snlu.core import a\n")
    graph = snlu_graph(pkg)
    assert graph["snlu.core.a"] == {"snlu.b"} and graph["snlu.b"] == {"snlu.core.a"}
    assert violations(graph) == ["import cycle: snlu.b <-> snlu.core.a",
                                 "snlu.core.a imports snlu.b: snlu.core imports nothing of snlu"]
