"""Range and choice checks for component config dataclasses (called from ``__post_init__``).

Each raises ``ValueError("<field>: ...")``; recipe validation prefixes the section's key path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def positive(obj: Any, *fields: str) -> None:
    """Raise ValueError naming the first of ``fields`` that is not > 0."""
    for f in fields:
        if getattr(obj, f) <= 0:
            raise ValueError(f"{f}: must be > 0, got {getattr(obj, f)}")


def in_range(obj: Any, field: str, lo: float, hi: float) -> None:
    """Raise ValueError when ``obj.field`` is outside [lo, hi]."""
    value = getattr(obj, field)
    if not lo <= value <= hi:
        raise ValueError(f"{field}: must be in [{lo}, {hi}], got {value}")


def one_of(obj: Any, field: str, choices: Iterable[Any]) -> None:
    """Raise ValueError when ``obj.field`` is not one of ``choices``."""
    choices = list(choices)
    value = getattr(obj, field)
    if value not in choices:
        raise ValueError(f"{field}: expected one of {', '.join(map(str, choices))}, got '{value}'")
