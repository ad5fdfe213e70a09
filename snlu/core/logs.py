"""Logging of every command: the ``snlu`` logger to stderr and, for a run, to its ``train.log``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(run_dir: Path | None = None, level: int = logging.INFO) -> None:
    """Console (stderr) and, for a run, ``train.log``."""
    root = logging.getLogger("snlu")
    root.setLevel(level)
    root.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    if run_dir is not None:
        fh = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    root.propagate = False
