"""The training loop: AdamW groups, per-epoch lr decay, clipping, dev selection, best/ checkpoint.

It asks the task for losses (``training_step``) and predictions (``predict``) and nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from snlu.data.cnerta import Utterance
from snlu.tasks.base import WEIGHTS, Task
from snlu.training.batching import make_loader
from snlu.training.optim import build_optimizer, build_scheduler

log = logging.getLogger("snlu")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """Trains ``task`` with the recipe's ``train`` and ``optim`` sections, writing into ``run_dir``."""

    def __init__(self, task: Task, cfg: DictConfig, run_dir: Path):
        self.task, self.cfg, self.run_dir = task, cfg, Path(run_dir)
        self.device = pick_device(cfg.train.device)
        self.task.to(self.device)
        self.optimizer = build_optimizer(task, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim.lr_decay)
        self.history: list[dict[str, Any]] = []

    def better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.task.higher_is_better else a < b)

    def fit(self, train: list[Utterance], dev: list[Utterance]) -> dict[str, Any]:
        """Train for ``train.epochs``; keep the checkpoint with the best dev metric in ``best/``."""
        tc = self.cfg.train
        loader = make_loader(train, self.task, tc.batch_size, tc.bucket_size, True, tc.num_workers, self.cfg.seed)
        best, best_metrics, key = None, {}, self.task.main_metric
        for epoch in range(1, tc.epochs + 1):
            loader.batch_sampler.set_epoch(epoch)
            stats = self.train_epoch(loader, epoch)
            self.scheduler.step()
            metrics, _ = self.evaluate(dev, desc=f"dev {epoch}")
            record = {"epoch": epoch, **stats, "dev": metrics}
            self.history.append(record)
            mark = ""
            if self.better(metrics[key], best):
                best, best_metrics, mark = metrics[key], metrics, " (best)"
                self.task.save(self.run_dir / "best")
            log.info("epoch %d: loss %.4f (%s) | dev %s %.4f%s | %.1f utt/s", epoch, stats["loss"],
                     ", ".join(f"{k} {v:.4f}" for k, v in stats["terms"].items()), key, metrics[key], mark,
                     stats["utt_per_s"])
            (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))
        return best_metrics

    def train_epoch(self, loader: torch.utils.data.DataLoader, epoch: int) -> dict[str, Any]:
        self.task.train()
        total, count, sums, n_utts, skipped = 0.0, 0, {}, 0, 0
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.cfg.train.epochs}", leave=False, mininterval=1.0)
        for step, batch in enumerate(bar, start=1):
            batch = to_device(batch, self.device)
            loss, terms = self.task.training_step(batch)
            if not math.isfinite(loss.item()):
                skipped += 1
                log.warning("epoch %d step %d: non-finite loss, step skipped", epoch, step)
                self.optimizer.zero_grad(set_to_none=True)
                continue
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), self.cfg.optim.max_grad_norm)
            self.optimizer.step()
            total, count, n_utts = total + loss.item(), count + 1, n_utts + len(batch["utts"])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if step % self.cfg.train.log_every == 0 or step == len(loader):
                bar.set_postfix(loss=f"{total / count:.3f}", utt_s=f"{n_utts / (time.perf_counter() - start):.1f}")
        seconds = time.perf_counter() - start
        return {
            "loss": total / max(count, 1),
            "terms": {k: v / max(count, 1) for k, v in sums.items()},
            "lrs": {g["name"]: g["lr"] for g in self.optimizer.param_groups},
            "seconds": seconds,
            "utt_per_s": n_utts / seconds,
            "skipped_steps": skipped,
        }

    @torch.no_grad()
    def evaluate(self, utts: list[Utterance], desc: str = "eval") -> tuple[dict[str, Any], list[Any]]:
        """Metrics and predictions (in the order of ``utts``); batches are length-sorted."""
        self.task.eval()
        tc = self.cfg.train
        loader = make_loader(utts, self.task, tc.eval_batch_size, tc.bucket_size, False, tc.num_workers)
        order = [i for b in loader.batch_sampler.batches() for i in b]
        preds: list[Any] = []
        for batch in tqdm(loader, desc=desc, leave=False, mininterval=1.0):
            preds.extend(self.task.predict(to_device(batch, self.device)))
        restored = [None] * len(utts)
        for i, p in zip(order, preds):
            restored[i] = p
        return self.task.evaluate(utts, restored), restored

    def load_best(self) -> None:
        from safetensors.torch import load_model

        load_model(self.task, str(self.run_dir / "best" / WEIGHTS), device=str(self.device))
