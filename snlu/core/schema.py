"""Validating a section of a recipe (or of any YAML file) against a config dataclass, with the full key path in
every error: what ``Registry.config`` and the recipe loader (snlu.config) share.

A component's config dataclass may also say, per field, what a saved model's config holds for it when the model
is loaded again (``metadata=on_load(...)``): ``clear`` (null: a file used once, at the start of training, like a
CMVN file or pretrained weights to copy) or ``saved_files`` (the model folder's subfolder named after the
section, where the component wrote its files); and which fields are training options a pretrained run does not
impose (``metadata=recipe_own()``: dropout, SpecAugment).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from snlu.core.errors import ConfigError

ON_LOAD = "snlu_on_load"  # the dataclass field metadata key of on_load()
RECIPE_OWN = "snlu_recipe_own"  # the dataclass field metadata key of recipe_own()


class Entries(Protocol):
    """What section checks need of a registry (``snlu.registry.Registry``)."""

    def names(self) -> list[str]: ...

    def get(self, name: str, key: str | None = None) -> Any: ...


def on_load(action: str) -> dict[str, str]:
    """Field metadata: what the field becomes when a saved model is loaded (``clear`` or ``saved_files``)."""
    if action not in ("clear", "saved_files"):
        raise ValueError(f"on_load: expected clear or saved_files, got '{action}'")
    return {ON_LOAD: action}


def recipe_own() -> dict[str, bool]:
    """Field metadata: a training option (regularisation: dropout, SpecAugment, dither) that
    ``audio_encoder.init_from`` keeps from the recipe, where every other frontend and encoder option comes from the
    pretrained run. (Fields declared ``on_load("clear")`` are the recipe's too.)"""
    return {RECIPE_OWN: True}


def first_line(e: Exception) -> str:
    """An error's message without the context lines (``full_key: ...``) OmegaConf and PyYAML append."""
    text = str(getattr(e, "msg", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _explain(e: OmegaConfBaseException, key: str, schema: type, values: Any) -> ConfigError:
    """Turn an OmegaConf error into one line naming the full key path."""
    sub = getattr(e, "full_key", None) or getattr(e, "key", None) or _first_bad(schema, values)
    path = join(key, str(sub)) or "file"
    if isinstance(e, ConfigKeyError):
        *parents, leaf = str(sub).split(".")
        schema = _owner(schema, parents)
        valid = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
        close = difflib.get_close_matches(leaf, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        options = f"valid: {', '.join(valid)}" if valid else "this section has no options"
        return ConfigError(f"{path}: unknown key{hint} ({options})")
    if isinstance(e, MissingMandatoryValue):
        return ConfigError(f"{path}: missing required value")
    msg = first_line(e)
    if isinstance(e, ValidationError):
        return ConfigError(f"{path}: wrong type: {msg}")
    return ConfigError(f"{path}: {msg}")


def join(key: str, sub: str) -> str:
    """A key path: ``key.sub``; either alone when the other is empty (``key=""``: a whole file's keys)."""
    return f"{key}.{sub}" if key and sub else key or sub


def _owner(schema: Any, parents: list[str]) -> Any:
    """The type that owns the key below ``parents`` (a nested dataclass, the values of a dict field)."""
    for part in parents:
        if dataclasses.is_dataclass(schema):
            schema = typing.get_type_hints(schema).get(part, schema)
        elif typing.get_origin(schema) is dict:  # ``part`` is a key of the dict: its values' type
            schema = typing.get_args(schema)[1]
        args = [a for a in typing.get_args(schema) if a is not type(None)]
        if typing.get_origin(schema) in (typing.Union, types.UnionType) and len(args) == 1:  # Optional[X]
            schema = args[0]
    return schema


def check_section(schema: type, values: Any, key: str) -> DictConfig:
    """Validate ``values`` against dataclass ``schema``; return the typed, defaults-filled section. Errors name
    ``key`` (the section's key path; "" for the top level of a file) and the key inside it."""
    if values is None:
        values = {}
    if not isinstance(values, (dict, DictConfig)):
        raise ConfigError(f"{key or 'file'}: expected a mapping, got {type(values).__name__}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), values)
        checked = OmegaConf.to_object(typed)  # runs __post_init__ range checks, reports missing values
        typed = OmegaConf.structured(checked)  # with what __post_init__ normalised (e.g. YAML's `off` -> "off")
    except OmegaConfBaseException as e:
        raise _explain(e, key, schema, values) from None
    except ValueError as e:
        named = ":" in (str(e).split() or [""])[0]  # "field: message" names the field
        raise ConfigError(join(key, str(e)) if named else f"{key or 'file'}: {e}") from None
    except TypeError as e:  # a list where a mapping belongs, or the reverse: OmegaConf names no key
        raise ConfigError(f"{join(key, _first_bad(schema, values)) or 'file'}: wrong type: {e}") from None
    return typed


def _first_bad(schema: type, values: Any) -> str:
    """The first top-level key of ``values`` that does not merge into ``schema`` on its own ('' if none)."""
    for k in values:
        try:
            OmegaConf.merge(OmegaConf.structured(schema), {k: values[k]})
        except (TypeError, OmegaConfBaseException):
            return str(k)
    return ""


def check_component(registry: Entries, values: Any, key: str) -> DictConfig:
    """Validate a ``{name: ..., **options}`` section against the named component's config."""
    if not isinstance(values, (dict, DictConfig)):
        raise ConfigError(f"{key}: expected a mapping with a 'name' (one of: {', '.join(registry.names())})")
    values = OmegaConf.create(values) if isinstance(values, dict) else values.copy()
    if "name" not in values or values.name is None:
        raise ConfigError(f"{key}.name: missing required value (one of: {', '.join(registry.names())})")
    name = values.pop("name")
    entry = registry.get(str(name), key=f"{key}.name")
    typed = check_section(entry.config, values, key)
    out = OmegaConf.create({"name": entry.name})
    return OmegaConf.merge(out, OmegaConf.create(OmegaConf.to_container(typed)))
