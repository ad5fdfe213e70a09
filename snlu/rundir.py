"""Run directories and the record of what produced a run: the folders ``snlu-train``, ``snlu-eval`` and
``snlu-sweep`` write into (never overwritten: a non-empty one is refused or moved aside), and
``environment.json``'s contents."""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from snlu.core.errors import SnluError

log = logging.getLogger("snlu")
PACKAGES = ("torch", "torchaudio", "transformers", "pytorch-crf", "omegaconf", "seqeval", "safetensors", "numpy",
            "tensorboard", "snlu")


def make_run_dir(output_dir: str | None, recipe: str, overwrite: bool = False) -> Path:
    """``--output-dir`` as given, else ``runs/<recipe>-<timestamp>``. A non-empty folder is refused, or with
    ``overwrite`` moved aside (:func:`move_aside`): nothing is ever deleted."""
    if output_dir:
        path = Path(output_dir)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{Path(recipe).stem}-{stamp}"
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise SnluError(f"{path}: run directory is not empty (continue it with --resume {path}, move it "
                            f"aside with --overwrite, or choose another --output-dir)")
        move_aside(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def move_aside(path: Path, why: str = "--overwrite") -> Path:
    """Rename ``path`` to ``<path>.old-<timestamp>[-N]`` (logged with ``why``), so a new run can start in its place."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{path.name}.old-{stamp}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.old-{stamp}-{n}")
    path.rename(target)
    log.warning("%s: moved the existing %s aside to %s (delete it yourself when no longer needed)",
                why, path, target)
    return target


def environment(seed: int, plugins: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What a run records about how it was produced."""
    import torch

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
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_version": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "git_commit": _git_commit(),
        "git_dirty": _git_dirty(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _git_dirty() -> bool | None:
    """Whether tracked files differ from the recorded commit (then the commit alone does not reproduce the run)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
