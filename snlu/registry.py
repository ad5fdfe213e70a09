"""One generic registry type, one instance per kind of component.

A component is a class registered under a name with a config dataclass of defaults::

    @FUSIONS.register("raw", config=RawFusionConfig)
    class RawFusion(nn.Module):
        '''Cross-attention of text tokens over audio frames.'''

Recipes name components (``fusion: {name: raw}``), never import paths, so a recipe can only
build what some imported module registered.

Each registry knows the base class of its kind, declared by the package that defines it before any of its
components registers (``FUSIONS.require(Fusion)`` in snlu/fusions/base.py; ``nn.Module`` where a kind has no
base of its own), and refuses a class that is not one with a one-line error.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from snlu.core.errors import RegistryError
from snlu.core.schema import check_component


@dataclasses.dataclass
class Entry:
    """What a registry holds for one name."""

    name: str
    cls: Any
    config: type
    module: str

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclasses.dataclass
class NoConfig:
    """Config of a component without options."""


class Registry:
    """Name -> (class, config dataclass) for one kind of component."""

    def __init__(self, kind: str, section: str):
        self.kind = kind  # plural, for listings: "fusions"
        self.section = section  # default recipe section: "fusion"
        self.base: type | None = None  # what every registered class subclasses (``require``)
        self._entries: dict[str, Entry] = {}

    def require(self, base: type) -> type:
        """Declare the base class of this kind: every class registered (already, or from now on) must subclass
        it. Returns ``base``."""
        if self.base is not None and self.base is not base:
            raise RegistryError(f"{self.kind}: base class declared twice: {_qualified(self.base)} and "
                                f"{_qualified(base)}")
        self.base = base
        for entry in list(self._entries.values()):  # registered before the declaration (a plugin imported early)
            if not _subclass(entry.cls, base):
                del self._entries[entry.name]
                self._refuse(entry.name, entry.cls)
        return base

    def _refuse(self, name: str, cls: Any) -> None:
        raise RegistryError(f"{self.kind}: cannot register '{name}': {_qualified(cls)} is not a subclass of "
                            f"{_qualified(self.base)}, the base class of {self.kind}")

    def register(self, name: str, config: type = NoConfig) -> Callable[[Any], Any]:
        """Class decorator: register ``cls`` under ``name`` with its config dataclass."""
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{self.kind}/{name}: config must be a dataclass, got {config!r}")

        def wrap(cls: Any) -> Any:
            if self.base is not None and not _subclass(cls, self.base):
                self._refuse(name, cls)
            module = getattr(cls, "__module__", "?")
            old = self._entries.get(name)
            if old is not None and (old.module, old.cls.__qualname__) != (module, cls.__qualname__):
                raise RegistryError(
                    f"{self.kind}: name '{name}' registered twice: by {old.module}.{old.cls.__qualname__} "
                    f"and by {module}.{cls.__qualname__}"
                )
            self._entries[name] = Entry(name, cls, config, module)
            return cls

        return wrap

    def get(self, name: str, key: str | None = None) -> Entry:
        """The entry for ``name``; an unknown name lists close matches and valid choices."""
        if name in self._entries:
            return self._entries[name]
        where = f"{key}: " if key else ""
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"{where}unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} '{name}'{hint} "
            f"(valid: {', '.join(self.names()) or 'none registered'})"
        )

    def build(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the component that ``cfg.name`` names: ``cls(cfg, *args, **kwargs)``.

        ``cfg`` may also be a name (then ``config=`` holds the options), for use outside recipes::

            AUDIO_ENCODERS.build("conformer", 80, config={"n_blocks": 4})
        """
        if isinstance(cfg, str):
            cfg = self.config(cfg, **(kwargs.pop("config", None) or {}))
        return self.get(cfg.name).cls(cfg, *args, **kwargs)

    def config(self, name: str, **options: Any) -> Any:
        """The validated, defaults-filled config of component ``name`` (with ``name`` set)."""
        return check_component(self, {"name": name, **options}, self.section)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return (self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.names())})"


def _subclass(cls: Any, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def _qualified(obj: Any) -> str:
    """``module.QualName`` of a class (or of a function registered by mistake)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


TEXT_ENCODERS = Registry("text_encoders", "text_encoder")
AUDIO_FRONTENDS = Registry("audio_frontends", "frontend")
AUDIO_ENCODERS = Registry("audio_encoders", "audio_encoder")
AUDIO_TOKENIZERS = Registry("audio_tokenizers", "audio_tokenizer")
FUSIONS = Registry("fusions", "fusion")
HEADS = Registry("heads", "head")
LOSSES = Registry("losses", "loss")
TASKS = Registry("tasks", "task")
DATASETS = Registry("datasets", "data")
OPTIMIZERS = Registry("optimizers", "optim")
SCHEDULERS = Registry("schedulers", "scheduler")
AUGMENTATIONS = Registry("augmentations", "augment")  # waveform augmentations of the training split (a list section)
UNITS = Registry("units", "units")  # CTC output units, named by task.units and ctc_head.aux.units (no section)

REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in (TEXT_ENCODERS, AUDIO_FRONTENDS, AUDIO_ENCODERS, AUDIO_TOKENIZERS, FUSIONS, HEADS, LOSSES, TASKS, DATASETS,
              OPTIMIZERS, SCHEDULERS, AUGMENTATIONS, UNITS)
}
