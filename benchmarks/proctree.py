"""Peak memory of a process tree (a training process and its DataLoader workers), sampled from /proc.

Three numbers, because none alone is right for a tree of forked processes:

- ``peak_pss_sum_mb``: the largest sum, over the live processes of the tree, of PSS (proportional set size:
  each page shared by k processes counts 1/k in each). Forked workers share the parent's pages copy-on-write,
  so this is the tree's real footprint, counting shared pages once. The headline number.
- ``peak_rss_sum_mb``: the same with RSS, which counts shared pages once per process (an upper bound).
- ``max_single_hwm_mb``: the kernel's high-water mark of the largest single process (``wait4``'s
  ``ru_maxrss``, what ``getrusage(RUSAGE_CHILDREN)`` reports): exact, never missed by sampling, but it sees
  one process only, never the workers on top of the trainer.

Sampling (``interval`` seconds) can miss a peak shorter than the interval; Linux only.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name field may hold spaces and parentheses


def tree(root: int) -> list[int]:
    """``root`` and its live descendants."""
    parent = {int(p): _ppid(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(c for c, pp in parent.items() if pp == pid)
    return out


def _kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    found = {}
    try:
        with open(path) as f:
            for line in f:
                name = line.split(":", 1)[0]
                if name in keys:
                    found[name] = int(line.split()[1])
    except OSError:
        pass
    return found


def sample(root: int) -> tuple[int, int, int]:
    """(sum of RSS kB, sum of PSS kB, number of processes) of the tree now."""
    rss = pss = n = 0
    for pid in tree(root):
        r = _kb(f"/proc/{pid}/status", ("VmRSS",)).get("VmRSS")
        p = _kb(f"/proc/{pid}/smaps_rollup", ("Pss",)).get("Pss")
        if r is None or p is None:
            continue
        rss, pss, n = rss + r, pss + p, n + 1
    return rss, pss, n


def run_measured(cmd: list[str], interval: float = 0.1, **popen: Any) -> dict[str, Any]:
    """Run ``cmd`` to its end, sampling its tree's memory; the peaks (MB), exit code and wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, **popen)
    peak_rss = peak_pss = max_procs = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # wait4, not poll(): it returns the rusage
        if pid:
            break
        rss, pss, n = sample(proc.pid)
        peak_rss, peak_pss, max_procs = max(peak_rss, rss), max(peak_pss, pss), max(max_procs, n)
        time.sleep(interval)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"returncode": proc.returncode, "wall_s": round(time.perf_counter() - start, 1),
            "peak_pss_sum_mb": round(peak_pss / 1024, 1), "peak_rss_sum_mb": round(peak_rss / 1024, 1),
            "max_single_hwm_mb": round(usage.ru_maxrss / 1024, 1), "max_processes": max_procs}
