"""Learning-rate schedules: each one's curve equals its closed form (written out here independently); bad
options are one-line recipe errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from snlu.config import load_recipe
from snlu.core.errors import ConfigError
from snlu.registry import SCHEDULERS

W, TOTAL, FLOOR = 4, 20, 0.1


def expected(name: str, n: int) -> float:
    """The factor after ``n`` steps, from the textbook formulas."""
    if name == "epoch_decay":
        return 0.95**n
    if name == "constant":
        return 1.0
    if n < W:
        return (n + 1) / W
    if name == "noam":
        return max(FLOOR, (W / (n + 1)) ** 0.5)
    t = min(1.0, (n - W) / (TOTAL - W))
    shape = 1.0 - t if name == "warmup_linear" else (1 + math.cos(math.pi * t)) / 2
    return FLOOR + (1 - FLOOR) * shape


def options(name: str) -> dict:
    if name == "epoch_decay":
        return {"decay": 0.05}
    return {} if name == "constant" else {"warmup_steps": W, "min_ratio": FLOOR}


@pytest.mark.parametrize("name", ["epoch_decay", "warmup_linear", "cosine", "noam", "constant"])
def test_lr_curve_equals_closed_form(name):
    schedule = SCHEDULERS.build(name, config=options(name))
    schedule.set_total(TOTAL)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.5)
    sched = schedule.build(opt)
    seen = []
    for _ in range(TOTAL + 3):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.5 * expected(name, n) for n in range(TOTAL + 3)], rel=1e-12)


def test_bad_options_and_unknown_name_are_one_line():
    recipe = Path(__file__).parents[2] / "recipes" / "text_only.yaml"
    with pytest.raises(ConfigError, match=r"^scheduler.warmup_steps: must be >= 0, got -1$"):
        load_recipe(recipe, ["scheduler.name=noam", "scheduler.warmup_steps=-1"])
    with pytest.raises(ConfigError, match=r"^scheduler.name: unknown scheduler 'coisne'; did you mean 'cosine'"):
        load_recipe(recipe, ["scheduler.name=coisne"])
    with pytest.raises(ConfigError, match=r"^optim.lr_decay: moved to its own section"):
        load_recipe(recipe, ["optim.lr_decay=0.1"])
    cfg = load_recipe(recipe, ["scheduler={name: cosine, warmup_steps: 10}", "optim.name=adam",  # (a new section)
                               "optim.lrs={text_encoder: 1e-5, text_head: 1e-3, textual_encoder: 1e-5}"])
    assert cfg.scheduler.min_ratio == 0.0 and cfg.optim.name == "adam" and cfg.optim.eps == 1e-6


