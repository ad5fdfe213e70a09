"""One generic registry type, one instance per kind of component.

A component is a class registered under a name with a config dataclass of defaults::

    @FUSIONS.register("raw", config=RawFusionConfig)
    class RawFusion(nn.Module):
        '''Cross-attention of text tokens over audio frames.'''

Recipes name components (``fusion: {name: raw}``), never import paths, so a recipe can only
build what some imported module registered.
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
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config: type = NoConfig) -> Callable[[Any], Any]:
        """Class decorator: register ``cls`` under ``name`` with its config dataclass."""
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{self.kind}/{name}: config must be a dataclass, got {config!r}")

        def wrap(cls: Any) -> Any:
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
