"""The training loop: AdamW groups, per-epoch lr decay, clipping, dev selection, best/ checkpoint.

It asks the task for losses (``training_step``) and predictions (``predict``) and nothing else.

Faults never lose a run: checkpoints (``snlu.training.checkpoint``) are written every
``train.checkpoint_every`` batches and at each epoch end; SIGINT/SIGTERM finish the current step, write a
checkpoint and stop (exit 130/143, ``snlu-train --resume RUN_DIR`` continues); a non-finite loss or
gradient skips its step (``train.max_bad_steps`` in a row stop the run); a batch that runs CUDA out of
memory is skipped (at most ``train.max_oom_skips``).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from snlu.data.cnerta import Utterance
from snlu.errors import SnluError
from snlu.tasks.base import WEIGHTS, Task
from snlu.training import checkpoint
from snlu.training.batching import make_loader
from snlu.training.checkpoint import Progress
from snlu.training.optim import build_optimizer, build_scheduler
from snlu.training.tracking import Tracker

log = logging.getLogger("snlu")


class TrainingError(SnluError):
    """The run cannot go on (too many non-finite steps, too many out-of-memory batches)."""


class Interrupted(SnluError):
    """SIGINT/SIGTERM stopped the run after a checkpoint; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopSignals:
    """While active, SIGINT and SIGTERM only record the signal: the loop finishes its step, writes a
    checkpoint and raises :class:`Interrupted`. A second signal stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s: finishing the current step, then writing a checkpoint (send it again to stop at once)",
                    signal.Signals(signum).name)


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
        self.progress = Progress()
        self.stop = StopSignals()
        self.tracker = Tracker(self.run_dir, cfg, task.main_metric)  # TensorBoard, curves.png, W&B

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.progress.history

    def better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.task.higher_is_better else a < b)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> Path:
        return checkpoint.save(self.run_dir, self.task, self.optimizer, self.scheduler, self.progress,
                               self.cfg.train.keep_checkpoints)

    def resume(self, path: Path) -> None:
        """Continue from checkpoint folder ``path`` (weights, optimizer, scheduler, RNG, position)."""
        p = self.progress = checkpoint.load(path, self.task, self.optimizer, self.scheduler, self.device)
        log.info("resumed from %s: epoch %d, %d batches done%s", path, p.epoch, p.batch,
                 f", best dev {self.task.main_metric} {p.best:.4f} (epoch {p.best_epoch})" if p.best_epoch else "")
        if p.batch == 0 and p.best_epoch is not None and p.best_epoch == p.epoch - 1:
            self.task.save(self.run_dir / "best")  # written right after this checkpoint: maybe never finished

    def interrupted(self) -> Interrupted:
        """Write a checkpoint of the state now and say how to continue."""
        path = self.checkpoint()
        p, name = self.progress, signal.Signals(self.stop.signum).name
        return Interrupted(f"{name}: stopped at epoch {p.epoch}, {p.batch} batches done; checkpoint {path}. "
                           f"Continue with: snlu-train --resume {self.run_dir}", self.stop.signum)

    # ------------------------------------------------------------------ loop

    def fit(self, train: list[Utterance], dev: list[Utterance]) -> dict[str, Any]:
        """Train for ``train.epochs`` (from where a resumed run stopped); keep the best dev model in ``best/``."""
        tc, p, key = self.cfg.train, self.progress, self.task.main_metric
        loader = make_loader(train, self.task, tc.batch_size, tc.bucket_size, True, tc.num_workers, self.cfg.seed)
        with self.stop, self.tracker:
            while p.epoch <= tc.epochs:
                epoch = p.epoch
                loader.batch_sampler.set_epoch(epoch, start=p.batch)
                stats = self.train_epoch(loader, epoch)
                try:
                    metrics, _ = self.evaluate(dev, desc=f"dev {epoch}")
                except Exception:
                    if self.stop.signum is not None:  # Ctrl-C also stopped the loader's workers
                        raise self.interrupted() from None
                    raise
                self.scheduler.step()
                p.history.append({"epoch": epoch, **stats, "dev": metrics})
                is_best = self.better(metrics[key], p.best)
                if is_best:
                    p.best, p.best_epoch, p.best_metrics = metrics[key], epoch, metrics
                p.epoch, p.batch, p.sums = epoch + 1, 0, {}
                self.checkpoint()  # before best/: a run killed in between rewrites best/ when resumed
                if is_best:
                    self.task.save(self.run_dir / "best")
                log.info("epoch %d: loss %.4f (%s) | dev %s %.4f%s | %.1f utt/s%s", epoch, stats["loss"],
                         ", ".join(f"{k} {v:.4f}" for k, v in stats["terms"].items()), key, metrics[key],
                         " (best)" if is_best else "", stats["utt_per_s"],
                         f" | {stats['skipped_steps']} steps skipped" if stats["skipped_steps"] else "")
                (self.run_dir / "history.json").write_text(json.dumps(p.history, indent=1))
                self.tracker.epoch(p.history, p.step)
                if self.stop.signum is not None:
                    raise self.interrupted()
        return p.best_metrics

    def train_epoch(self, loader: torch.utils.data.DataLoader, epoch: int) -> dict[str, Any]:
        """Train on the batches of ``epoch`` not done yet; the epoch's statistics."""
        self.task.train()
        tc, p = self.cfg.train, self.progress
        if not p.sums:
            p.sums = {"loss": 0.0, "steps": 0, "terms": {}, "utts": 0, "skipped": 0, "seconds": 0.0}
        s, n = p.sums, len(loader)
        clock = time.perf_counter()

        def tick() -> None:  # epoch time so far, kept in the checkpoints
            nonlocal clock
            now = time.perf_counter()
            s["seconds"], clock = s["seconds"] + now - clock, now

        batches = iter(loader)
        with tqdm(total=n, initial=p.batch, desc=f"epoch {epoch}/{tc.epochs}", leave=False, mininterval=1.0) as bar:
            while p.batch < n:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except Exception:
                    if self.stop.signum is not None:  # Ctrl-C also stopped the loader's workers
                        tick()
                        raise self.interrupted() from None
                    raise
                self.train_step(batch, epoch, n)
                p.batch, p.step = p.batch + 1, p.step + 1
                bar.update(1)
                if s["steps"] and (p.batch % tc.log_every == 0 or p.batch == n):
                    bar.set_postfix(loss=f"{s['loss'] / s['steps']:.3f}")
                if self.stop.signum is not None:
                    tick()
                    raise self.interrupted()
                if tc.checkpoint_every and p.step % tc.checkpoint_every == 0 and p.batch < n and not p.bad_in_a_row:
                    tick()  # (the epoch-end checkpoint covers the last batch; none during a run of bad steps)
                    self.checkpoint()
        tick()
        steps = max(s["steps"], 1)
        return {
            "loss": s["loss"] / steps,
            "terms": {k: v / steps for k, v in s["terms"].items()},
            "lrs": {g["name"]: g["lr"] for g in self.optimizer.param_groups},
            "seconds": s["seconds"],
            "utt_per_s": s["utts"] / max(s["seconds"], 1e-9),
            "skipped_steps": s["skipped"],
        }

    def train_step(self, batch: dict[str, Any], epoch: int, n: int) -> None:
        """One optimizer step, skipped for a non-finite loss or gradient or a CUDA out-of-memory error."""
        oom = False
        try:
            value, norm, terms = self.forward_backward(batch)
        except torch.OutOfMemoryError:  # torch.cuda.OutOfMemoryError; the except clause drops its frames
            oom = True
        if oom:
            self.skip_oom(batch, epoch, n)
            return
        if not (math.isfinite(value) and math.isfinite(norm)):
            self.skip_bad("loss" if not math.isfinite(value) else "gradient", epoch, n)
            return
        self.optimizer.step()
        p, s = self.progress, self.progress.sums
        p.bad_in_a_row = 0
        s["loss"], s["steps"], s["utts"] = s["loss"] + value, s["steps"] + 1, s["utts"] + len(batch["utts"])
        for k, v in terms.items():
            s["terms"][k] = s["terms"].get(k, 0.0) + v
        self.tracker.step(p.step + 1, value, terms)  # p.step counts this batch once it returns

    def forward_backward(self, batch: dict[str, Any]) -> tuple[float, float, dict[str, float]]:
        """Loss, clipped gradients in place; (loss value, gradient norm before clipping, loss terms)."""
        loss, terms = self.task.training_step(to_device(batch, self.device))
        self.optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        if not math.isfinite(value):
            return value, math.nan, terms
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.task.parameters(), self.cfg.optim.max_grad_norm)
        return value, float(norm), terms

    def skip_bad(self, what: str, epoch: int, n: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        tc, p = self.cfg.train, self.progress
        p.bad_in_a_row, p.bad_steps, p.sums["skipped"] = p.bad_in_a_row + 1, p.bad_steps + 1, p.sums["skipped"] + 1
        log.warning("epoch %d batch %d/%d: non-finite %s, step skipped (%d in a row, %d in the run)",
                    epoch, p.batch + 1, n, what, p.bad_in_a_row, p.bad_steps)
        if p.bad_in_a_row >= tc.max_bad_steps:
            last = checkpoint.latest(self.run_dir)
            raise TrainingError(f"{p.bad_in_a_row} non-finite steps in a row (train.max_bad_steps="
                                f"{tc.max_bad_steps}) at epoch {epoch} batch {p.batch + 1}: training diverged, "
                                f"stopping (last good checkpoint: {last or 'none yet'}; lower the learning rates?)")

    def skip_oom(self, batch: dict[str, Any], epoch: int, n: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()  # a no-op when CUDA was never used
        tc, p = self.cfg.train, self.progress
        p.oom_skips, p.sums["skipped"] = p.oom_skips + 1, p.sums["skipped"] + 1
        utts = batch["utts"]
        log.warning("epoch %d batch %d/%d: CUDA out of memory on %d utterances (first %s), batch skipped "
                    "(%d of train.max_oom_skips=%d)", epoch, p.batch + 1, n, len(utts),
                    utts[0].where if utts else "?", p.oom_skips, tc.max_oom_skips)
        if p.oom_skips > tc.max_oom_skips:
            raise TrainingError(f"CUDA out of memory on {p.oom_skips} batches (train.max_oom_skips="
                                f"{tc.max_oom_skips}): lower train.batch_size or data.max_frames")

    @torch.no_grad()
    def evaluate(self, utts: list[Utterance], desc: str = "eval") -> tuple[dict[str, Any], list[Any]]:
        """Metrics and predictions (in the order of ``utts``); batches are length-sorted."""
        from snlu.inference import predict_utterances  # imported here: inference uses this module's device helpers

        tc = self.cfg.train
        preds = predict_utterances(self.task, utts, tc.eval_batch_size, self.device, tc.num_workers, desc=desc)
        return self.task.evaluate(utts, preds), preds

    def load_best(self) -> None:
        from safetensors.torch import load_model

        load_model(self.task, str(self.run_dir / "best" / WEIGHTS), device=str(self.device))
