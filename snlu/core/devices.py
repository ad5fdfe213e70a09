"""Where a model runs: the device of a ``train.device`` / ``--device`` setting, batches moved there, and the
autocast dtype of ``train.amp``."""

from __future__ import annotations

import os
from typing import Any

import torch

from snlu.core.errors import SnluError


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU if there is one, else the CPU. Under torchrun (``WORLD_SIZE`` > 1) ``cuda`` is this
    process's GPU (``LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def check_device(name: str, where: str) -> None:
    """A one-line SnluError, before anything is built, when ``name`` asks for a GPU this machine lacks (``where``
    names the setting: ``--device cuda``, ``train.device=cuda``)."""
    if not name.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise SnluError(f"{where}: no CUDA device is available on this machine (use cpu or auto)")
    index = name.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        raise SnluError(f"{where}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device`` (None: full float32)."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if setting == "bf16" else torch.float16
