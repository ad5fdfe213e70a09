"""The training loop: the recipe's optimiser and lr schedule, clipping, dev selection, best/ checkpoint.

It asks the task for losses (``training_step``) and predictions (``predict``) and nothing else; the optimiser
and the schedule are registered components (``optim``, ``scheduler``: snlu/optim/). Options:
gradient accumulation (``train.accum_steps``), mixed precision (``train.amp``: autocast, with a GradScaler
for fp16), ``torch.compile`` of the encoders (``train.compile``), and data-parallel training under
torchrun (``snlu.training.distributed``: DDP, rank 0 writes, dev/test predictions sharded and gathered).

Faults never lose a run: checkpoints (``snlu.training.checkpoint``) are written every
``train.checkpoint_every`` batches and at each epoch end; SIGINT/SIGTERM finish the current step, write a
checkpoint and stop (exit 130/143, ``snlu-train --resume RUN_DIR`` continues); a non-finite loss or
gradient skips its step (``train.max_bad_steps`` in a row stop the run); a batch that runs CUDA out of
memory is skipped (at most ``train.max_oom_skips``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from snlu.augment.chain import Chain, build_chain
from snlu.core.devices import amp_dtype, pick_device, to_device
from snlu.core.errors import SnluError
from snlu.data.batching import batch_budget, make_loader
from snlu.data.utterance import Utterance
from snlu.inference import predict_utterances
from snlu.optim.build import build_optimizer, build_scheduler
from snlu.tasks.base import Task
from snlu.tasks.io import WEIGHTS
from snlu.training import checkpoint, distributed
from snlu.training.checkpoint import Progress
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


class StepModule(torch.nn.Module):
    """``task.training_step`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, task: Task):
        super().__init__()
        self.task = task

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.task.training_step(batch)


class Trainer:
    """Trains ``task`` with the recipe's ``train`` and ``optim`` sections, writing into ``run_dir``."""

    def __init__(self, task: Task, cfg: DictConfig, run_dir: Path, started: float | None = None):
        """``started``: ``time.perf_counter()`` when this session began (default: now); the run's time is the
        sum over its sessions (:meth:`seconds`)."""
        self.task, self.cfg, self.run_dir = task, cfg, Path(run_dir)
        self.started = time.perf_counter() if started is None else started
        self.seconds_before = 0.0  # earlier sessions' time, up to the checkpoint this one resumed from
        tc = cfg.train
        self.place = distributed.place()
        self.device = pick_device(tc.device)
        self.task.to(self.device)
        self.amp = amp_dtype(tc.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        if tc.compile:
            for module in task.to_compile():  # the dense parts (the task says which); CRF/CTC/alignment stay eager
                module.compile()  # shapes vary by batch: recompiles, then marks dims dynamic
        self.step_module: torch.nn.Module = StepModule(task)
        if self.place.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # find_unused_parameters: components may own parameters a recipe does not train (BERT's pooler)
            self.step_module = DistributedDataParallel(self.step_module, device_ids=ids, find_unused_parameters=True)
        self.optimizer = build_optimizer(task, cfg.optim)
        self.schedule, self.scheduler = build_scheduler(self.optimizer, cfg.scheduler)
        self.progress = Progress()
        self.stop = StopSignals()
        self.tracker = Tracker(self.run_dir, cfg, task.main_metric, enabled=self.place.main)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.progress.history

    def better(self, metrics: dict[str, Any], best: dict[str, Any] | None) -> bool:
        """Whether dev ``metrics`` beat the ``best`` so far: the task's main metric, then its tie metric."""
        key, tie = self.task.main_metric, self.task.tie_metric
        if best is None:
            return True
        a, b = metrics[key], best[key]
        if a == b and tie is not None and tie[0] in metrics and tie[0] in best:
            a, b = metrics[tie[0]], best[tie[0]]
            return a > b if tie[1] else a < b
        return a > b if self.task.higher_is_better else a < b

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> Path:
        """Rank 0 writes the checkpoint; the others wait for it."""
        path = None
        self.progress.scaler = self.scaler.state_dict()  # {} unless fp16
        self.progress.seconds = self.seconds()
        if self.place.main:
            path = checkpoint.save(self.run_dir, self.task, self.optimizer, self.scheduler, self.progress,
                                   self.cfg.train.keep_checkpoints)
        distributed.barrier()
        return distributed.broadcast(path)

    def save_best(self) -> None:
        if self.place.main:
            self.task.save(self.run_dir / "best")
        distributed.barrier()

    def resume(self, path: Path) -> None:
        """Continue from checkpoint folder ``path`` (weights, optimizer, scheduler, RNG, position)."""
        p = self.progress = checkpoint.load(path, self.task, self.optimizer, self.scheduler, self.device)
        self.seconds_before = p.seconds
        if p.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(p.scaler)
        log.info("resumed from %s: epoch %d, %d batches done%s", path, p.epoch, p.batch,
                 f", best dev {self.task.main_metric} {p.best:.4f} (epoch {p.best_epoch})" if p.best_epoch else "")
        if p.batch == 0 and p.best_epoch is not None and p.best_epoch == p.epoch - 1:
            self.save_best()  # written right after this checkpoint: maybe never finished

    def seconds(self) -> float:
        """Wall time of the run so far: earlier sessions up to the checkpoint resumed from, and this one."""
        return self.seconds_before + time.perf_counter() - self.started

    def interrupted(self) -> Interrupted:
        """Write a checkpoint of the state now and say how to continue."""
        path = self.checkpoint()
        signum = self.stop.signum or signal.SIGTERM  # under torchrun another rank may have got the signal
        p, name = self.progress, signal.Signals(signum).name
        return Interrupted(f"{name}: stopped at epoch {p.epoch}, {p.batch} batches done; checkpoint {path}. "
                           f"Continue with: snlu-train --resume {self.run_dir}", signum)

    # ------------------------------------------------------------------ loop

    def stopping(self) -> bool:
        """A stop signal arrived (on any rank: all ranks stop at the same step)."""
        return distributed.any_true(self.stop.signum is not None)

    def fit(self, train: list[Utterance], dev: list[Utterance]) -> dict[str, Any]:
        """Train for ``train.epochs`` (from where a resumed run stopped); keep the best dev model in ``best/``."""
        tc, p, key = self.cfg.train, self.progress, self.task.main_metric
        processor = self.task.processor
        augment = self.augmentation(train)
        loader = make_loader(train, processor, tc.batch_size, tc.bucket_size, True, tc.num_workers, self.cfg.seed,
                             self.place.rank, self.place.world_size, batch_budget(tc.batch_frames, processor),
                             augment=augment)
        self.schedule.set_total(self.schedule_length(len(loader)))
        with self.stop, self.tracker:
            while p.epoch <= tc.epochs and not self.step_limit_reached():
                epoch = p.epoch
                loader.batch_sampler.set_epoch(epoch, start=p.batch)
                stats = self.train_epoch(loader, epoch)
                try:
                    metrics, _ = self.evaluate(dev, desc=f"dev {epoch}")
                except Exception:
                    if self.stop.signum is not None:  # Ctrl-C also stopped the loader's workers
                        raise self.interrupted() from None
                    raise
                if self.schedule.interval == "epoch":
                    self.scheduler.step()
                p.history.append({"epoch": epoch, **stats, "dev": metrics})
                is_best = self.better(metrics, p.best_metrics or None)
                if is_best:
                    p.best, p.best_epoch, p.best_metrics = metrics[key], epoch, metrics
                p.epoch, p.batch, p.sums = epoch + 1, 0, {}
                self.checkpoint()  # before best/: a run killed in between rewrites best/ when resumed
                if is_best:
                    self.save_best()
                log.info("epoch %d: loss %.4f (%s) | dev %s %.4f%s | %.1f utt/s%s", epoch, stats["loss"],
                         ", ".join(f"{k} {v:.4f}" for k, v in stats["terms"].items()), key, metrics[key],
                         " (best)" if is_best else "", stats["utt_per_s"],
                         f" | {stats['skipped_steps']} steps skipped" if stats["skipped_steps"] else "")
                if self.place.main:
                    (self.run_dir / "history.json").write_text(json.dumps(p.history, indent=1))
                self.tracker.epoch(p.history, p.step)
                if self.stopping():
                    raise self.interrupted()
        return p.best_metrics

    def augmentation(self, train: list[Utterance]) -> Chain | None:
        """The recipe's ``augment`` list for the training loader (None without one), said once in the log."""
        augment = build_chain(self.cfg.get("augment"))
        if augment is not None:
            cached = any(u.features is not None for u in train)
            log.info("augment: %s, on the training waveforms%s", augment,
                     ": the training split is read from its audio, not the feature cache (dev and test still are)"
                     if cached else "")
        return augment

    def schedule_length(self, batches_per_epoch: int) -> int:
        """How many times the schedule is stepped over the run: epochs, or optimizer steps (``train.max_steps``
        and ``train.accum_steps`` counted; an epoch's last group may hold fewer batches)."""
        tc = self.cfg.train
        if self.schedule.interval == "epoch":
            return tc.epochs
        steps = tc.epochs * math.ceil(batches_per_epoch / tc.accum_steps)
        return min(steps, math.ceil(tc.max_steps / tc.accum_steps)) if tc.max_steps else steps

    def lrs(self) -> dict[str, float]:
        """The learning rate of each parameter group now."""
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}

    def step_limit_reached(self) -> bool:
        """``train.max_steps`` batches are done (a quick run: the epoch in progress ends, is evaluated, saved)."""
        return bool(self.cfg.train.max_steps) and self.progress.step >= self.cfg.train.max_steps

    def groups(self, batches: Iterator[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
        """The epoch's remaining batches, ``train.accum_steps`` at a time (fewer at the end of the epoch).

        Groups start at multiples of ``accum_steps``, so a checkpoint (taken between groups) resumes on one.
        """
        done = self.progress.batch
        while done < n and not self.step_limit_reached():
            size = min(self.cfg.train.accum_steps - done % self.cfg.train.accum_steps, n - done)
            if self.cfg.train.max_steps:
                size = min(size, self.cfg.train.max_steps - self.progress.step)
            group = []
            for _ in range(size):
                try:
                    group.append(next(batches))
                except StopIteration:
                    break
            if not group:
                return
            yield group
            done += len(group)

    def train_epoch(self, loader: torch.utils.data.DataLoader, epoch: int) -> dict[str, Any]:
        """Train on the batches of ``epoch`` not done yet; the epoch's statistics (summed over ranks)."""
        self.task.train()
        tc, p = self.cfg.train, self.progress
        s, n = self.sums(), len(loader)
        clock = time.perf_counter()

        def tick() -> None:  # epoch time so far, kept in the checkpoints
            nonlocal clock
            now = time.perf_counter()
            s["seconds"], clock = s["seconds"] + now - clock, now

        groups = self.groups(iter(loader), n)
        with tqdm(total=n, initial=p.batch, desc=f"epoch {epoch}/{tc.epochs}", leave=False, mininterval=1.0,
                  disable=not self.place.main) as bar:
            while p.batch < n:
                try:
                    group = next(groups)
                except StopIteration:
                    break
                except Exception:
                    if self.stop.signum is not None:  # Ctrl-C also stopped the loader's workers
                        tick()
                        raise self.interrupted() from None
                    raise
                self.train_step(group, epoch, n)
                before = p.step
                p.batch, p.step = p.batch + len(group), p.step + len(group)
                bar.update(len(group))
                if s["steps"] and (p.batch % tc.log_every < len(group) or p.batch == n):
                    bar.set_postfix(loss=f"{s['loss'] / s['steps']:.3f}")
                if self.stopping():
                    tick()
                    raise self.interrupted()
                crossed = tc.checkpoint_every and p.step // tc.checkpoint_every > before // tc.checkpoint_every
                if crossed and p.batch < n and not p.bad_in_a_row:
                    tick()  # (the epoch-end checkpoint covers the last batch; none during a run of bad steps)
                    self.checkpoint()
        tick()
        return self.epoch_stats()

    def sums(self) -> dict[str, Any]:
        """The running sums of the epoch in progress (kept in checkpoints)."""
        if not self.progress.sums:
            self.progress.sums = {"loss": 0.0, "steps": 0, "terms": {}, "utts": 0, "skipped": 0, "seconds": 0.0}
        return self.progress.sums

    def epoch_stats(self) -> dict[str, Any]:
        """The epoch's mean loss and terms over all ranks' batches, its throughput and skipped steps."""
        s = self.progress.sums
        keys = sorted(s["terms"])
        total = distributed.sum_floats([s["loss"], s["steps"], s["utts"], s["skipped"], *(s["terms"][k] for k in keys)])
        loss, steps, utts, skipped, terms = total[0], max(total[1], 1), total[2], total[3], total[4:]
        return {
            "loss": loss / steps,
            "terms": {k: v / steps for k, v in zip(keys, terms)},
            "lrs": self.lrs(),
            "seconds": s["seconds"],
            "utt_per_s": utts / max(s["seconds"], 1e-9),
            "skipped_steps": int(skipped),
        }

    def train_step(self, group: list[dict[str, Any]], epoch: int, n: int) -> None:
        """One optimizer step on a group of batches (gradient accumulation), skipped for a non-finite loss
        or gradient (on any rank) or a CUDA out-of-memory error (single process only)."""
        oom = False
        try:
            value, norm, terms = self.forward_backward(group)
        except torch.OutOfMemoryError:  # torch.cuda.OutOfMemoryError; the except clause drops its frames
            if self.place.enabled:  # the other ranks are inside the gradient all-reduce: no way to skip together
                raise
            oom = True
        if oom:
            self.skip_oom(group, epoch, n)
            return
        if not distributed.all_true(math.isfinite(value) and math.isfinite(norm)):
            if self.scaler.is_enabled() and math.isfinite(value):  # fp16 overflow: the scaler lowers its scale
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                return
            if self.scaler.is_enabled():
                self.scaler.update()  # (clears the scaler's unscaled state for the next step)
            self.skip_bad("loss" if not math.isfinite(value) else "gradient", epoch, n)
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.schedule.interval == "step":
            self.scheduler.step()
        p, s = self.progress, self.sums()
        p.bad_in_a_row = 0
        utts = sum(len(b["utts"]) for b in group)
        s["loss"], s["steps"], s["utts"] = s["loss"] + value * len(group), s["steps"] + len(group), s["utts"] + utts
        for k, v in terms.items():
            s["terms"][k] = s["terms"].get(k, 0.0) + v * len(group)
        self.tracker.step(p.step + len(group), value, terms, self.lrs())  # p.step counts these batches once it returns

    def autocast(self) -> torch.autocast:
        """Mixed precision as ``train.amp`` says (a no-op context when it is off)."""
        return torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The task's training loss on ``batch`` (moved to the device), through DDP and autocast."""
        with self.autocast():
            return self.step_module(to_device(batch, self.device))

    def forward_backward(self, group: list[dict[str, Any]]) -> tuple[float, float, dict[str, float]]:
        """Mean loss over ``group``'s batches, gradients accumulated and clipped in place; (loss value,
        gradient norm before clipping, mean loss terms). Gradients are all-reduced on the last batch only."""
        self.optimizer.zero_grad(set_to_none=True)
        value, terms = 0.0, {}
        for i, batch in enumerate(group):
            last = i == len(group) - 1
            sync = contextlib.nullcontext() if last or not self.place.enabled else self.step_module.no_sync()
            with sync:
                loss, batch_terms = self.loss(batch)
                # Backward even for a non-finite loss: under DDP every rank must join the all-reduce; the
                # step is then skipped on all ranks together.
                self.scaler.scale(loss / len(group)).backward()
            value += loss.item() / len(group)
            for k, v in batch_terms.items():
                terms[k] = terms.get(k, 0.0) + v / len(group)
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.task.parameters(), self.cfg.optim.max_grad_norm)
        return value, float(norm), terms

    def skip_bad(self, what: str, epoch: int, n: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        tc, p, s = self.cfg.train, self.progress, self.sums()
        p.bad_in_a_row, p.bad_steps, s["skipped"] = p.bad_in_a_row + 1, p.bad_steps + 1, s["skipped"] + 1
        log.warning("epoch %d batch %d/%d: non-finite %s, step skipped (%d in a row, %d in the run)",
                    epoch, p.batch + 1, n, what, p.bad_in_a_row, p.bad_steps)
        if p.bad_in_a_row >= tc.max_bad_steps:
            last = checkpoint.latest(self.run_dir)
            raise TrainingError(f"{p.bad_in_a_row} non-finite steps in a row (train.max_bad_steps="
                                f"{tc.max_bad_steps}) at epoch {epoch} batch {p.batch + 1}: training diverged, "
                                f"stopping (last good checkpoint: {last or 'none yet'}; lower the learning rates?)")

    def skip_oom(self, group: list[dict[str, Any]], epoch: int, n: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()  # a no-op when CUDA was never used
        tc, p, s = self.cfg.train, self.progress, self.sums()
        p.oom_skips, s["skipped"] = p.oom_skips + 1, s["skipped"] + 1
        utts = [u for b in group for u in b["utts"]]
        log.warning("epoch %d batch %d/%d: CUDA out of memory on %d utterances (first %s), batch skipped "
                    "(%d of train.max_oom_skips=%d)", epoch, p.batch + 1, n, len(utts),
                    utts[0].where if utts else "?", p.oom_skips, tc.max_oom_skips)
        if p.oom_skips > tc.max_oom_skips:
            raise TrainingError(f"CUDA out of memory on {p.oom_skips} batches (train.max_oom_skips="
                                f"{tc.max_oom_skips}): lower train.batch_size, set train.batch_frames, or use "
                                f"train.accum_steps")

    @torch.no_grad()
    def evaluate(self, utts: list[Utterance], desc: str = "eval") -> tuple[dict[str, Any], list[Any]]:
        """Metrics and predictions (in the order of ``utts``); batches are length-sorted."""
        tc, rank, world = self.cfg.train, self.place.rank, self.place.world_size
        mine = predict_utterances(self.task, utts[rank::world], tc.eval_batch_size, self.device, tc.num_workers,
                                  progress=self.place.main, desc=desc)
        shards = distributed.gather(mine)  # each rank predicted every world-th utterance
        preds = [shards[i % world][i // world] for i in range(len(utts))]
        return self.task.evaluate(utts, preds), preds

    def load_best(self) -> None:
        from safetensors.torch import load_model

        load_model(self.task, str(self.run_dir / "best" / WEIGHTS), device=str(self.device))
