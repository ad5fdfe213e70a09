"""snlu: spoken language understanding components (Chinese spoken NER first), assembled by recipes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load"]


def __getattr__(name: str) -> Any:
    """``snlu.load`` on first use: ``import snlu`` stays cheap (no torch) for tools that only need the version."""
    if name == "load":
        from snlu.api import load

        return load
    raise AttributeError(f"module 'snlu' has no attribute '{name}'")
