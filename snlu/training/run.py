"""Run directories: creation, logging to train.log, and the record of what produced the run."""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
import platform
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snlu.errors import SnluError

log = logging.getLogger("snlu")
PACKAGES = ("torch", "torchaudio", "transformers", "pytorch-crf", "omegaconf", "seqeval", "safetensors", "snlu")


def make_run_dir(output_dir: str | None, recipe: str) -> Path:
    """``--output-dir`` as given (refused if non-empty), else ``runs/<recipe>-<timestamp>``."""
    if output_dir:
        path = Path(output_dir)
        if path.exists() and any(path.iterdir()):
            raise SnluError(f"{path}: run directory is not empty (choose another --output-dir)")
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{Path(recipe).stem}-{stamp}"
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def environment(seed: int, plugins: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What a run records about how it was produced."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "seed": seed,
        "command": sys.argv,
        "plugins": plugins,
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
