"""Loading components: the built-ins, the plugins a recipe lists, and installed entry points.

A plugin is a normal Python module whose import registers components. A recipe lists it under
``plugins:`` (a module name, or a ``.py`` file relative to the recipe); an installed package may
declare the entry-point group ``snlu.plugins``. Every load is recorded so a run can say which
plugin versions produced it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any

from omegaconf import ListConfig

from snlu.core.errors import ConfigError, PluginError, SnluError

BUILTIN_MODULES = (
    "snlu.data.cnerta",
    "snlu.data.units",
    "snlu.frontends.fbank",
    "snlu.frontends.waveform",
    "snlu.encoders.bert",
    "snlu.encoders.transformer",
    "snlu.encoders.conformer",
    "snlu.encoders.hf_ssl",
    "snlu.encoders.whisper",
    "snlu.heads.ctc",
    "snlu.heads.crf",
    "snlu.tokenizers.all",
    "snlu.tokenizers.dpmask",
    "snlu.fusions.raw",
    "snlu.fusions.tokenized",
    "snlu.fusions.concat",
    "snlu.losses.multitask",
    "snlu.tasks.spoken_ner",
    "snlu.tasks.text_ner",
    "snlu.tasks.asr",
    "snlu.tasks.e2e_ner",
    "snlu.optim.optimizers",
    "snlu.optim.schedulers",
    "snlu.augment.speed",
    "snlu.augment.noise",
)
ENTRY_POINT_GROUP = "snlu.plugins"

LOADED: dict[str, dict[str, str]] = {}  # plugin -> {"source", "version"}
_builtins_done = False


def load_builtins() -> None:
    """Import every built-in component module once (registration happens on import)."""
    global _builtins_done
    if not _builtins_done:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_done = True
        load_entry_points()


def load_entry_points() -> None:
    """Import the modules installed packages declare under the ``snlu.plugins`` group."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in LOADED:
            continue
        try:
            ep.load()
        except SnluError:
            raise
        except Exception as e:  # a broken third-party package must name itself
            raise PluginError(f"plugin '{ep.name}' (entry point {ep.value}) failed to import: "
                              f"{type(e).__name__}: {e}") from None
        dist = ep.dist.name if ep.dist else ep.module
        LOADED[ep.name] = {"source": f"entry point {ep.value}", "version": _version(dist)}


def list_option(value: Any, key: str) -> list[str]:
    """A recipe list option (``plugins``) as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    items = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{key}: expected a list of names")
    return items


def load_plugins(names: Any, base_dir: Path | None = None) -> None:
    """Load built-ins, entry points and the plugins a recipe lists (module names or .py files)."""
    load_builtins()
    for name in list_option(names, "plugins"):
        if name in LOADED:
            continue
        if name.endswith(".py"):
            path = (base_dir or Path.cwd()) / name
            LOADED[name] = {"source": str(path.resolve()), "version": "sha256:" + _import_file(name, path)}
        else:
            _import_module(name)
            LOADED[name] = {"source": "module", "version": _version(name.split(".")[0])}


def _import_module(name: str) -> None:
    try:
        importlib.import_module(name)
    except SnluError:
        raise
    except Exception as e:
        raise PluginError(f"plugin '{name}' failed to import: {type(e).__name__}: {e}") from None


def _import_file(name: str, path: Path) -> str:
    if not path.is_file():
        raise PluginError(f"plugin '{name}': file not found: {path}")
    data = path.read_bytes()
    module_name = "snlu_plugin_" + path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SnluError:
        raise
    except Exception as e:
        del sys.modules[module_name]
        raise PluginError(f"plugin '{name}' ({path}) failed to import: {type(e).__name__}: {e}") from None
    return hashlib.sha256(data).hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
