"""Mixed precision and torch.compile options: ``train.amp`` picks the autocast dtype, bf16 autocast on the
CPU trains the real model with a loss close to float32's, and ``train.compile`` keeps results and state keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snlu.config import load_recipe
from snlu.core.seed import seed_everything
from snlu.registry import DATASETS, TASKS
from snlu.training.trainer import Trainer, amp_dtype

RECIPE = Path(__file__).parents[2] / "recipes" / "fusion_raw_all.yaml"


def test_amp_setting_resolves_per_device():
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("bf16", cpu) == torch.bfloat16 and amp_dtype("fp16", cpu) == torch.float16
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert amp_dtype("auto", torch.device("cuda")) == expected


def setup(tmp_path: Path, tiny: list[str], demo: list[str], *extra: str) -> tuple[Trainer, dict]:
    cfg = load_recipe(RECIPE, [*tiny, *demo, "train.device=cpu", *extra])
    seed_everything(cfg.seed)
    train = DATASETS.build(cfg.data).load()["train"]
    task = TASKS.get(cfg.task.name).cls.from_data(cfg, train)
    trainer = Trainer(task, cfg, tmp_path)
    task.eval()  # no dropout or SpecAugment: both runs see the same computation
    batch = task.processor.collate([task.processor.prepare(u) for u in train[:4]])
    return trainer, batch


def test_bf16_autocast_on_cpu_trains_close_to_float32(tmp_path, tiny, demo_overrides):
    trainer, batch = setup(tmp_path / "a", tiny, demo_overrides)
    fp32 = trainer.forward_backward([batch])[0]
    trainer, batch = setup(tmp_path / "b", tiny, demo_overrides, "train.amp=bf16")
    bf16 = trainer.forward_backward([batch])[0]
    assert trainer.amp == torch.bfloat16
    assert bf16 != fp32  # autocast really changed the arithmetic
    assert bf16 == pytest.approx(fp32, rel=0.03)


def test_fp16_overflow_lowers_the_loss_scale_instead_of_counting_bad_steps(tmp_path, tiny, demo_overrides):
    trainer, batch = setup(tmp_path, tiny, demo_overrides, "train.amp=fp16")
    assert trainer.scaler.is_enabled()
    first = trainer.scaler.get_scale()
    for _ in range(30):  # the first scale (65536) overflows fp16 gradients: the scaler halves it, no step
        trainer.train_step([batch], epoch=1, n=1)
        if trainer.optimizer.state:
            break
    assert trainer.optimizer.state, "no optimizer step within 30 tries"
    assert trainer.scaler.get_scale() < first and trainer.progress.bad_steps == 0


def test_compile_keeps_the_loss_and_the_state_keys(tmp_path, tiny, demo_overrides):
    trainer, batch = setup(tmp_path / "a", tiny, demo_overrides)
    eager = trainer.forward_backward([batch])[0]
    keys = set(trainer.task.state_dict())
    trainer, batch = setup(tmp_path / "b", tiny, demo_overrides, "train.compile=true")
    assert set(trainer.task.state_dict()) == keys  # checkpoints stay loadable without compile
    compiled = trainer.forward_backward([batch])[0]
    assert compiled == pytest.approx(eager, rel=1e-4)


def test_the_fp16_loss_scale_survives_a_checkpoint(tmp_path, tiny, demo_overrides):
    trainer, batch = setup(tmp_path / "a", tiny, demo_overrides, "train.amp=fp16")
    for _ in range(3):
        trainer.train_step([batch], epoch=1, n=1)
    scale = trainer.scaler.get_scale()
    assert scale < 65536.0  # lowered by the overflowing first steps
    path = trainer.checkpoint()
    again, _ = setup(tmp_path / "a", tiny, demo_overrides, "train.amp=fp16")
    again.resume(path)
    assert again.scaler.get_scale() == scale
