"""snlu: spoken language understanding components (Chinese spoken NER first), assembled by recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"
__all__ = ["load"]


def load(model_dir: str | Path, device: str = "auto", **options: Any) -> Any:
    """A trained model ready for ``predict``: an exported folder (``snlu-export``'s) through onnxruntime, with no
    torch import (snlu/export/runtime.py); else a saved model (a run or its ``best/``) on ``device``
    (snlu/api.py). ``import snlu`` stays cheap: each path imports what it needs on first use."""
    from snlu.export.manifest import is_exported

    if is_exported(model_dir):
        from snlu.export.runtime import load_exported

        return load_exported(model_dir, device, **options)
    from snlu.api import load as load_saved

    return load_saved(model_dir, device, **options)
