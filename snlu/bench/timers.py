"""Per-component wall time inside a training step, without touching the task's code.

:class:`ComponentTimers` wraps the ``forward``/``loss``/``decode`` methods of each component a task declares
(its recipe sections: ``frontend``, ``audio_encoder``, ``fusion``, ...) on the instance, so every call is
timed; on CUDA it synchronises around each call (the breakdown then costs a little speed, which is why the
throughput numbers come from separate, unwrapped steps).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

METHODS = ("forward", "loss", "decode")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ComponentTimers:
    """Seconds spent in each component of ``task`` while installed (``with timers: ...``)."""

    def __init__(self, task: nn.Module, device: torch.device):
        self.task, self.device = task, device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._installed: list[tuple[nn.Module, str]] = []

    def names(self) -> list[str]:
        return [n for n in getattr(self.task, "components", {}) if isinstance(getattr(self.task, n, None), nn.Module)]

    def __enter__(self) -> ComponentTimers:
        for name in self.names():
            module = getattr(self.task, name)
            for method in METHODS:
                if callable(getattr(module, method, None)) and method not in vars(module):
                    setattr(module, method, self._wrap(name, getattr(module, method)))
                    self._installed.append((module, method))
        return self

    def __exit__(self, *exc: object) -> None:
        for module, method in self._installed:
            delattr(module, method)  # the class's method shows through again
        self._installed.clear()

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            sync(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
