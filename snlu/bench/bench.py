"""Benchmark one recipe's model: training and inference throughput, FLOPs and the achieved fraction of the
machine's matmul peak, a per-component time breakdown, padding efficiency, data wait and peak memory.

The steps are the trainer's own (``Trainer.train_step``, with the recipe's batch size, workers, AMP and
compile settings) on the recipe's training data (the demo corpus by default), after a warm-up; prediction is
the routine users run (``snlu.inference.predict_utterances``, under the recipe's ``train.amp``). The FLOPs
and the breakdown are measured on the same batches in separate passes, so neither perturbs the timing.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from snlu.bench.flops import count_flops, matmul_peak
from snlu.bench.timers import ComponentTimers, sync
from snlu.data.batching import batch_budget, make_loader, padding_efficiency
from snlu.inference import predict_utterances
from snlu.run import build
from snlu.training.trainer import Trainer

log = logging.getLogger("snlu")


@dataclasses.dataclass
class BenchOptions:
    """How long to measure."""

    warmup: int = 3  # training steps before timing (allocator, thread pools, lazy init)
    steps: int = 10  # timed training steps
    infer_batches: int = 5  # timed inference batches


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict[str, Any]]:
    """The training loader's batches, epoch after epoch."""
    epoch = 1
    while True:
        loader.batch_sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def audio_seconds(batch: dict[str, Any]) -> float:
    return sum(u.duration for u in batch["utts"])


def bench(cfg: DictConfig, opts: BenchOptions = BenchOptions()) -> dict[str, Any]:
    """Measure ``cfg``'s model; a JSON-ready dict (times in ms, rates per second)."""
    built = build(cfg)  # as snlu-train builds it
    task, train = built.task, built.splits["train"]
    tc = cfg.train
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, cfg, Path(tmp))
        trainer.tracker.enabled = False
        device = trainer.device
        loader = make_loader(train, task.processor, tc.batch_size, tc.bucket_size, True, tc.num_workers, cfg.seed,
                             budget=batch_budget(tc.batch_frames, task.processor))
        sampler = loader.batch_sampler
        sampler.set_epoch(1)
        padding = padding_efficiency(sampler.global_batches(), sampler.lengths)
        result: dict[str, Any] = {
            "task": cfg.task.name, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(), "batch_size": tc.batch_size,
            "batch_frames": tc.batch_frames, "num_workers": tc.num_workers,
            "amp": str(trainer.amp).replace("torch.", "") if trainer.amp else "off", "compile": tc.compile,
            "parameters_M": round(sum(p.numel() for p in task.parameters()) / 1e6, 2),
            "padding_efficiency": round(padding, 4), "train_utterances": len(train),
        }
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        batches = endless(loader)
        task.train()
        for _ in range(opts.warmup):
            trainer.train_step([next(batches)], epoch=1, n=1)
        kept, waits, computes = [], [], []
        for _ in range(opts.steps):
            start = time.perf_counter()
            batch = next(batches)
            got = time.perf_counter()
            trainer.train_step([batch], epoch=1, n=1)
            sync(device)
            waits.append(got - start)
            computes.append(time.perf_counter() - got)
            kept.append(batch)
        utts = sum(len(b["utts"]) for b in kept)
        seconds = sum(waits) + sum(computes)
        result["train"] = {
            "steps": opts.steps, "step_ms": 1000 * seconds / opts.steps,
            "utt_per_s": utts / seconds, "audio_s_per_s": sum(map(audio_seconds, kept)) / seconds,
            "data_wait_fraction": sum(waits) / seconds,
        }
        result["breakdown_ms"] = breakdown(trainer, kept, waits)
        result.update(flops(trainer, kept, sum(computes)))
        result["infer"] = inference(trainer, kept[: opts.infer_batches])
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if device.type == "cuda":
            result["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def instrumented_step(trainer: Trainer, batch: dict[str, Any]) -> dict[str, float]:
    """One training step split into forward (per component, via :class:`ComponentTimers`), backward and
    optimizer; the same operations as ``Trainer.train_step`` without its bookkeeping."""
    task, device = trainer.task, trainer.device
    timers = ComponentTimers(task, device)
    trainer.optimizer.zero_grad(set_to_none=True)
    sync(device)
    t0 = time.perf_counter()
    with timers:
        loss, _ = trainer.loss(batch)
    sync(device)
    t1 = time.perf_counter()
    trainer.scaler.scale(loss).backward()
    sync(device)
    t2 = time.perf_counter()
    trainer.scaler.unscale_(trainer.optimizer)
    torch.nn.utils.clip_grad_norm_(task.parameters(), trainer.cfg.optim.max_grad_norm)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    sync(device)
    t3 = time.perf_counter()
    parts = dict(timers.seconds)
    parts["other_forward"] = (t1 - t0) - sum(parts.values())
    parts.update(backward=t2 - t1, optimizer=t3 - t2)
    return parts


def breakdown(trainer: Trainer, batches: list[dict[str, Any]], waits: list[float]) -> dict[str, float]:
    """Mean milliseconds per step in data wait, each component's forward, backward and the optimizer."""
    total: dict[str, float] = {"data_wait": sum(waits)}
    for batch in batches:
        for k, v in instrumented_step(trainer, batch).items():
            total[k] = total.get(k, 0.0) + v
    return {k: round(1000 * v / len(batches), 2) for k, v in total.items()}


def flops(trainer: Trainer, batches: list[dict[str, Any]], compute_seconds: float) -> dict[str, Any]:
    """FLOPs per training step (forward + backward of the kept batches), achieved FLOP/s over the timed
    steps' compute, the dense matmul peak of the same device and dtype, and their ratio."""
    device, amp = trainer.device, trainer.amp

    def forward_backward(batch: dict[str, Any]) -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.loss(batch)[0].backward()

    total = sum(count_flops(lambda b=b: forward_backward(b)) for b in batches)
    trainer.optimizer.zero_grad(set_to_none=True)
    achieved = total / compute_seconds
    dtype = amp or torch.float32
    peak = matmul_peak(device, dtype)
    return {
        "gflop_per_step": total / len(batches) / 1e9,
        "achieved_gflop_per_s": achieved / 1e9,
        "matmul_peak": {"gflop_per_s": peak["flops_per_s"] / 1e9, "size": peak["size"],
                        "dtype": str(dtype).replace("torch.", "")},
        "fraction_of_peak": achieved / peak["flops_per_s"],
    }


def inference(trainer: Trainer, batches: list[dict[str, Any]]) -> dict[str, float]:
    """Prediction throughput of the routine users run (``snlu.inference.predict_utterances``: what
    ``snlu-predict``, ``snlu-eval``, ``snlu.load().predict`` and dev evaluation run, under the run's
    ``train.amp``), on the utterances of ``batches`` in batches of the training batch size, features included,
    in the main process (``snlu-predict``'s default of no workers); after one warm-up call on the first batch."""
    task, device = trainer.task, trainer.device
    utts = [u for b in batches for u in b["utts"]]
    size = trainer.cfg.train.batch_size
    predict_utterances(task, batches[0]["utts"], size, device, progress=False)  # warm-up
    sync(device)
    start = time.perf_counter()
    predict_utterances(task, utts, size, device, progress=False)
    sync(device)
    seconds = time.perf_counter() - start
    task.train()
    return {"utt_per_s": len(utts) / seconds, "audio_s_per_s": sum(u.duration for u in utts) / seconds}
