"""Does data loading overlap compute? Time blocked waiting for the next batch vs whole step time, per num_workers.

    python benchmarks/data_wait.py [--workers 0 1 2] [--steps 10] [--out bench_out] [RECIPE] [key=value ...]

Builds the recipe's task and data (default: ``recipes/fusion_raw_all.yaml`` on the demo corpus), then for each
``num_workers`` runs the real training loader (``make_loader``: length buckets, the processor's ``prepare`` reading
and featurizing audio) and a training step (the task's loss, backward, clipping, the recipe's AdamW) for
``--warmup`` + ``--steps`` batches, timing ``next(loader)`` (data wait) and the step. The warm-up batches
(worker start, first batch) are not counted. Every setting sees the same batches. Prints a table and writes
``OUT/data_wait.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fusion_raw_all.yaml"


def step(task: Any, optimizer: Any, batch: dict[str, Any], max_norm: float) -> None:
    """One training step as the trainer takes it (on CPU, no accumulation)."""
    import torch

    loss, _ = task.training_step(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(task.parameters(), max_norm)
    optimizer.step()


def measure(task: Any, optimizer: Any, cfg: Any, train: list, workers: int, steps: int,
            warmup: int) -> dict[str, Any]:
    """Data wait and step time over ``steps`` batches after ``warmup`` ones, with ``workers`` loader processes."""
    from snlu.data.batching import make_loader

    tc = cfg.train
    loader = make_loader(train, task.processor, tc.batch_size, tc.bucket_size, True, workers, cfg.seed)
    loader.batch_sampler.set_epoch(1)
    task.train()
    batches, waits, totals, utts = iter(loader), [], [], 0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        step(task, optimizer, batch, cfg.optim.max_grad_norm)
        t2 = time.perf_counter()
        if i >= warmup:
            waits.append(t1 - t0)
            totals.append(t2 - t0)
            utts += len(batch["utts"])
    del batches, loader  # stops the persistent workers
    return {"num_workers": workers, "steps": steps, "wait_s": round(sum(waits), 3), "step_s": round(sum(totals), 3),
            "wait_fraction": round(sum(waits) / sum(totals), 4), "mean_step_s": round(sum(totals) / steps, 3),
            "max_wait_s": round(max(waits), 3), "utt_per_s": round(utts / sum(totals), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=str(RECIPE))
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. data.train=... train.batch_size=8")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=10, help="measured batches per setting")
    p.add_argument("--warmup", type=int, default=2, help="batches not counted (worker start, first batch)")
    p.add_argument("--out", default="bench_out", help="output folder")
    p.add_argument("--json", help="result file (default OUT/data_wait.json)")
    a = p.parse_args()

    import torch

    from snlu import run
    from snlu.optim.build import build_optimizer

    cfg = run.load(a.recipe, [*a.overrides, "train.device=cpu"])
    built = run.build(cfg)
    task, splits = built.task, built.splits
    optimizer, rows = build_optimizer(task, cfg.optim), []
    for w in a.workers:
        row = measure(task, optimizer, cfg, splits["train"], w, a.steps, a.warmup)
        rows.append(row)
        print(f"num_workers={w}: data wait {100 * row['wait_fraction']:5.1f}% of step time | "
              f"mean step {row['mean_step_s']:.3f} s | longest wait {row['max_wait_s']:.3f} s | "
              f"{row['utt_per_s']} utt/s", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"recipe": a.recipe, "overrides": a.overrides, "batch_size": cfg.train.batch_size,
              "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "train_utterances": len(splits["train"]), "runs": rows}
    path = Path(a.json) if a.json else out / "data_wait.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
