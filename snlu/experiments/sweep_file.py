"""Sweep files: read and validated like recipes (a config dataclass, errors naming the key), expanded into
variants x seeds, and every variant's recipe validated as ``snlu-train`` validates it (``snlu.run.load``).

The format is in snlu/experiments/sweep.py (and docs/experiments.md); recipe paths are relative to the file.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from snlu.config import find_recipe, read_yaml
from snlu.core.errors import ConfigError
from snlu.core.schema import check_section
from snlu.run import load

COMPLETE = "metrics.json"  # what makes a run complete
VAR = re.compile(r"\{(\w+)\}")
UNSAFE = re.compile(r"[^\w.=+-]")  # characters a variant name (a folder name) may not contain


def _overrides(value: list[str], key: str) -> None:
    if not all("=" in o for o in value):
        raise ValueError(f"{key}: expected a list of key=value strings, got {list(value)!r}")


@dataclasses.dataclass
class VariantSpec:
    """A named variant: its overrides, and another recipe than the sweep's (relative to the sweep file)."""

    recipe: str | None = None
    overrides: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SweepFile:
    """The keys of a sweep file."""

    recipe: str | None = None  # the base recipe of every variant (required)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])
    overrides: list[str] = dataclasses.field(default_factory=list)  # for every run of every variant
    vars: dict[str, Any] = dataclasses.field(default_factory=dict)  # `{name}` in overrides; null: give it with --var
    grid: Any = None  # {override key: [values]}, or a list of such grids
    variants: dict[str, VariantSpec | None] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.recipe:
            raise ValueError("recipe: expected the path of the base recipe (relative to the sweep file)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds: expected a list of distinct non-negative integers, got {list(self.seeds)!r}")
        _overrides(self.overrides, "overrides")
        for name, variant in self.variants.items():
            _overrides(variant.overrides if variant else [], f"variants.{name}.overrides")
        for key, grid in self.grids():
            if not isinstance(grid, dict) or not grid:
                raise ValueError(f"{key}: expected a mapping of override keys to lists of values")
            for axis, values in grid.items():
                if not isinstance(values, list) or not values or any(isinstance(v, (list, dict)) for v in values):
                    raise ValueError(f"{key}.{axis}: expected a non-empty list of values, got {values!r}")

    def grids(self) -> list[tuple[str, Any]]:
        """(key path, grid) of each grid."""
        if not self.grid:
            return []
        if isinstance(self.grid, list):
            return [(f"grid[{i}]", g) for i, g in enumerate(self.grid)]
        return [("grid", self.grid)]


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    recipe: Path  # absolute
    overrides: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Run:
    variant: Variant
    seed: int
    dir: Path

    @property
    def name(self) -> str:
        return f"{self.variant.name}/seed{self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [*self.variant.overrides, f"seed={self.seed}"]

    @property
    def complete(self) -> bool:
        return (self.dir / COMPLETE).is_file()

    @property
    def started(self) -> bool:
        return self.dir.is_dir() and any(self.dir.iterdir())


@dataclasses.dataclass
class Sweep:
    path: Path
    variants: list[Variant]
    seeds: list[int]

    def runs(self, out: Path) -> list[Run]:
        """Every run, seed by seed (a half-finished sweep already has whole seeds to compare)."""
        return [Run(v, s, Path(out) / v.name / f"seed{s}") for s in self.seeds for v in self.variants]


def load_sweep(path: str | Path, variables: dict[str, str] | None = None, extra: list[str] | None = None) -> Sweep:
    """Read and check a sweep file; ``variables`` replace its ``vars``, ``extra`` overrides go to every run."""
    path = find_recipe(path)  # (a packaged sweep by name: sweeps/demo_ablation)

    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {msg}")

    try:
        spec: SweepFile = OmegaConf.to_object(check_section(SweepFile, read_yaml(path.resolve()), ""))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    base = _recipe(path, spec.recipe, "recipe", fail)
    env = {str(k): None if v is None else _text(v) for k, v in spec.vars.items()}
    for name, value in (variables or {}).items():
        if name not in env:  # a typo would leave the file's value in place, silently
            raise ConfigError(f"--var {name}: {path} declares no such variable (vars: {', '.join(env) or 'none'})")
        env[name] = value
    extra = list(extra or [])
    if not all("=" in o for o in extra):
        raise fail("command-line overrides", f"expected a list of key=value strings, got {extra!r}")

    variants: list[Variant] = []
    for _, grid in spec.grids():
        for name, over in _expand_grid(grid):
            variants.append(Variant(name, base, tuple(spec.overrides + over)))
    for name, v in spec.variants.items():
        v = v or VariantSpec()
        recipe = _recipe(path, v.recipe, f"variants.{name}.recipe", fail) if v.recipe else base
        variants.append(Variant(str(name), recipe, tuple(spec.overrides + v.overrides)))
    if not variants:  # no grid, no list: the base recipe alone, over the seeds
        variants.append(Variant(base.stem, base, tuple(spec.overrides)))

    seen: set[str] = set()
    for v in variants:
        if UNSAFE.search(v.name) or v.name.startswith("."):
            raise fail("variants", f"'{v.name}': a variant name may hold letters, digits and . _ = + - only")
        if v.name in seen:
            raise fail("variants", f"two variants are named '{v.name}' (names are run folders: make them unique)")
        seen.add(v.name)
    variants = [dataclasses.replace(v, overrides=tuple(_substitute(o, env, fail) for o in (*v.overrides, *extra)))
                for v in variants]
    return Sweep(path, variants, list(spec.seeds))


def _recipe(sweep: Path, value: str, key: str, fail: Callable[[str, str], ConfigError]) -> Path:
    """The recipe ``value`` names: a file relative to the sweep file, else a packaged recipe of that name."""
    path = find_recipe(str(value), sweep.resolve().parent).resolve()
    if not path.is_file():
        raise fail(key, f"recipe not found: {path}")
    return path


def _text(value: Any) -> str:
    """A YAML scalar as OmegaConf's dotlist parses it back (``1e-05``, ``true``, ``null``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def _expand_grid(grid: dict[str, list[Any]]) -> list[tuple[str, list[str]]]:
    """The named variants of one grid (``{override key: [values]}``), in the order of the axes.

    A grid variant is named by its values on the axes with several values, joined by ``-``: the value alone
    for a ``*.name`` axis, ``leaf=value`` otherwise (``raw-all``, ``fusion_layer=2e-05``)."""
    axes = list(grid)
    named = [a for a in axes if len(grid[a]) > 1] or axes  # single-valued axes name nothing, unless all are
    out = []
    for combo in itertools.product(*(grid[a] for a in axes)):
        values = dict(zip(axes, (_text(v) for v in combo)))
        parts = [values[a] if a.endswith(".name") else f"{a.rsplit('.', 1)[-1]}={values[a]}" for a in named]
        out.append((UNSAFE.sub("_", "-".join(parts)), [f"{a}={values[a]}" for a in axes]))
    return out


def _substitute(override: str, env: dict[str, str | None], fail: Callable[[str, str], ConfigError]) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise fail("vars", f"'{override}' uses {{{name}}}, which is not declared "
                               f"(vars: {', '.join(env) or 'none'})")
        if env[name] is None:
            raise fail(f"vars.{name}", f"not set: give it with --var {name}=VALUE")
        return env[name]

    return VAR.sub(value, override)


def validate(sweep: Sweep) -> None:
    """Load and validate every variant's recipe now, as ``snlu-train`` does before it reads any data, so a typo
    fails before hours of runs, not during them."""
    for v in sweep.variants:
        try:
            load(v.recipe, [*v.overrides, "seed=0"])
        except ConfigError as e:
            raise ConfigError(f"{sweep.path}: variant {v.name}: {e}") from None
