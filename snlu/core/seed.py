"""Seeding and deterministic kernels: what makes a run repeatable."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """``train.deterministic``: deterministic CUDA kernels and cuDNN algorithms (CPU kernels already are).

    Kernels without a deterministic version warn instead of failing (``warn_only``): CTC's CUDA backward is
    one of them, so a CUDA spoken-NER run with ``ctc_coef > 0`` is close to, not bit-for-bit, repeatable.
    """
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (read when CUDA starts)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
