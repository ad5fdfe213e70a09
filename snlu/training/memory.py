"""Keep a training process's heap from growing with the number of steps (glibc malloc).

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so the variable-size tensors
of later steps come from the heap instead, which fragments and never shrinks: on CPU the trainer's RSS grew by
~4 MB per step over 80 steps (``benchmarks/scale_memory.py``). A fixed threshold (glibc's own starting value,
128 KiB) keeps large blocks in mmap, returned to the system when freed, and the RSS flat.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
DEFAULT = 128 * 1024


def fix_mmap_threshold(nbytes: int = DEFAULT) -> bool:
    """Fix glibc's mmap threshold at ``nbytes`` for this process (and the workers it forks later); whether it was
    set. Does nothing off glibc, or when ``MALLOC_MMAP_THRESHOLD_`` already sets it from the environment."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    return libc.mallopt(M_MMAP_THRESHOLD, int(nbytes)) == 1
