"""Model FLOPs (``torch.utils.flop_counter``) and the machine's dense matmul peak, measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_SIZES = (256, 512, 1024, 2048)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls, convolutions and attention ``fn`` runs (forward and backward, if it does both)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...] = PEAK_SIZES,
                min_seconds: float = 0.3) -> dict[str, float]:
    """Best FLOP/s of ``n x n @ n x n`` over ``sizes`` (each timed for at least ``min_seconds`` after a
    warm-up): the dense-compute limit the model's FLOP/s is compared with. Sizes stop growing once one
    product takes a quarter of ``min_seconds`` (a slow dtype, e.g. bf16 on a CPU without bf16 units, would
    otherwise spend minutes on the largest size)."""
    best = {"flops_per_s": 0.0, "size": 0}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm-up
        _sync(device)
        reps, start = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if reps % 4 == 0:
                _sync(device)
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
        rate = 2 * n**3 * reps / elapsed
        if rate > best["flops_per_s"]:
            best = {"flops_per_s": rate, "size": n}
        if elapsed / reps > min_seconds / 4:
            break
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
