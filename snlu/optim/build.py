"""The recipe's optimiser and schedule for a task: parameter groups per model part (a recipe section's, or what
``optim.groups`` maps it to), no weight decay on vectors.

Both are registered components (``optim: {name: adamw | adam, ...}``, ``scheduler: {name: epoch_decay | ...}``:
snlu/optim/); this module only groups the task's parameters and hands them over. It knows a task only by what
it asks of it (``Grouped``): a component package imports no task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import nn

from snlu.core.errors import ConfigError
from snlu.optim.schedulers import Schedule
from snlu.registry import OPTIMIZERS, SCHEDULERS

log = logging.getLogger("snlu")


class Grouped(Protocol):
    """What grouping needs of a task (``snlu.tasks.base.Task``): its recipe and its parameters per group."""

    cfg: DictConfig

    def param_groups(self, mapping: Mapping[str, str] | None = None) -> dict[str, list[nn.Parameter]]: ...


def param_groups(task: Grouped, optim: DictConfig) -> list[dict[str, Any]]:
    """One group per (part, decay) pair, named after the part; vectors (biases, LayerNorm, CRF start/end
    scores) get no weight decay."""
    groups = []
    parts = task.param_groups(optim.get("groups"))
    for part, params in parts.items():
        if part not in optim.lrs:
            raise ConfigError(f"optim.lrs.{part}: missing learning rate for parameter group '{part}' "
                              f"(task '{task.cfg.task.name}' has groups: {', '.join(parts)})")
        lr = float(optim.lrs[part])
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for ps, wd in ((decay, optim.weight_decay), (no_decay, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": lr, "weight_decay": wd, "name": part})
    unused = sorted(set(optim.lrs) - set(parts))
    if unused:
        log.info("optim.lrs: groups not used by task '%s': %s", task.cfg.task.name, ", ".join(unused))
    return groups


def build_optimizer(task: Grouped, optim: DictConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser over the task's parameter groups."""
    return OPTIMIZERS.build(optim, param_groups(task, optim))


def build_scheduler(optimizer: torch.optim.Optimizer, scheduler: DictConfig
                    ) -> tuple[Schedule, torch.optim.lr_scheduler.LambdaLR]:
    """The recipe's schedule and the ``LambdaLR`` that applies it (its state goes into checkpoints)."""
    schedule = SCHEDULERS.build(scheduler)
    return schedule, schedule.build(optimizer)
