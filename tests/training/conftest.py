"""A toy task for trainer tests: a two-layer regression with dropout (so RNG state matters), no audio,
no BERT, and faults injected on request (non-finite loss or gradient, CUDA out of memory, a signal)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from snlu.config import TrainConfig
from snlu.core.schema import check_component, check_section
from snlu.core.seed import seed_everything
from snlu.data.processor import Processor
from snlu.data.utterance import Utterance
from snlu.data.vocab import CharVocab
from snlu.registry import HEADS, OPTIMIZERS, SCHEDULERS
from snlu.tasks.base import Task
from snlu.training.trainer import Trainer

SENTENCES = ["北京大学", "上海", "广州市的天气", "深圳", "南京路上", "天津港", "重庆火锅店", "成都", "武汉长江大桥",
             "西安", "杭州西湖边", "苏州园林"]


class NaNGrad(torch.autograd.Function):
    """Identity forward, NaN gradient: a finite loss whose backward pass blows up."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("nan")


class ToyProcessor(Processor):
    """The first four characters as numbers; the target is the sentence's length / 10."""

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        x = torch.tensor([ord(c) % 97 / 97 for c in utt.sentence[:4].ljust(4)])
        return {"x": x, "y": torch.tensor(len(utt.sentence) / 10), "utt": utt}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"x": torch.stack([it["x"] for it in items]), "y": torch.stack([it["y"] for it in items]),
                "utts": [it["utt"] for it in items]}


class ToyTask(Task):
    """Predicts a sentence's length from its first characters; ``faults`` maps a training_step call
    number (1-based) to "nan_loss", "nan_grad", "oom" or a signal number sent to this process mid-step."""

    components = {"net": HEADS}  # one section (never validated: the toy is not registered)
    main_metric = "mse"
    higher_is_better = False
    uses_audio = False

    def __init__(self, cfg, vocab, load_weights: bool = True):
        super().__init__(cfg, vocab)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
        self.processor = ToyProcessor(vocab, uses_audio=False)
        self.faults: dict[int, Any] = {}
        self.calls = 0

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        self.calls += 1
        fault = self.faults.get(self.calls)
        if fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (fake)")
        for sig in fault if isinstance(fault, tuple) else ():
            os.kill(os.getpid(), sig)  # delivered now, in the middle of the step
        loss = ((self.net(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()
        if fault == "nan_loss":
            loss = loss * float("nan")
        elif fault == "nan_grad":
            loss = NaNGrad.apply(loss)
        return loss, {"mse": loss.item()}

    def predict(self, batch: dict[str, Any]) -> list[float]:
        return self.net(batch["x"]).squeeze(-1).tolist()

    def evaluate(self, utts: list[Utterance], preds: list[float]) -> dict[str, Any]:
        return {"mse": sum((p - len(u.sentence) / 10) ** 2 for u, p in zip(utts, preds)) / len(utts)}


@pytest.fixture
def utts() -> list[Utterance]:
    """12 toy utterances: 6 batches of 2 per epoch."""
    return [Utterance(f"u{i}", s, None, 0.0, [], [], {"sentence": s}, f"toy.jsonl:{i + 1}")
            for i, s in enumerate(SENTENCES)]


@pytest.fixture
def toy(tmp_path):
    """``toy(**train_options) -> Trainer`` of a fresh ToyTask in ``tmp_path/run`` (seeded like a run)."""

    def make(run: str = "run", scheduler: dict[str, Any] | None = None, **train: Any) -> Trainer:
        options = {"epochs": 2, "batch_size": 2, "num_workers": 0, "device": "cpu", "checkpoint_every": 1, **train}
        cfg = OmegaConf.create({
            "seed": 3,
            "task": {"name": "toy"},
            "train": check_section(TrainConfig, options, "train"),
            "optim": check_component(OPTIMIZERS, {"name": "adamw", "lrs": {"toy": 0.05}, "groups": {"net": "toy"},
                                                  "weight_decay": 0.01,
                                                  "max_grad_norm": 1.0}, "optim"),
            "scheduler": check_component(SCHEDULERS, scheduler or {"name": "epoch_decay", "decay": 0.1}, "scheduler"),
        })
        seed_everything(cfg.seed)
        task = ToyTask(cfg, CharVocab.build(SENTENCES))
        (tmp_path / run).mkdir(exist_ok=True)
        return Trainer(task, cfg, tmp_path / run)

    return make

