"""What the subsampling front's formulation changes in whole training steps and inference batches.

    python benchmarks/subsampling_step.py [--recipe recipes/fusion_raw_all.yaml] [--steps 8] [--batches 4]
        [--out bench_out/subsampling_step.json] [key=value ...]

One process, one model, the recipe's real batches (the demo corpus by default, prepared up front): every
batch is run twice, once with ``Conv2dSubsampling`` computed as first written (``plain``: NCHW ``nn.Conv2d``
stack, transpose, Linear) and once as the module computes it now (``snlu``), the order alternating from
batch to batch, so both see the same batches, weights and machine load. Training steps are the trainer's
(``Trainer.train_step``), inference is ``task.predict`` under ``no_grad``. Prints and writes min / median /
max wall-clock and median CPU milliseconds per step and per batch for each, and the median over batches
of each batch's speed-up (plain's time over snlu's on the same batch).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fusion_raw_all.yaml"


def plain_forward(self: Any, feats: Any, lengths: Any) -> tuple[Any, Any]:
    """``Conv2dSubsampling.forward`` as first written."""
    from snlu.core.frames import subsampled_lengths

    x = self.conv(feats.unsqueeze(1))  # (B, C, T', F')
    b, c, t, f = x.shape
    x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
    return x, subsampled_lengths(lengths).clamp(max=t)


def stats(runs: list[tuple[float, float]]) -> dict[str, float]:
    ms = [1000 * w for w, _ in runs]
    return {"min_ms": round(min(ms), 1), "median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
            "median_cpu_ms": round(statistics.median(1000 * c for _, c in runs), 1), "n": len(runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")
    p.add_argument("--recipe", default=str(RECIPE))
    p.add_argument("--steps", type=int, default=8, help="training batches (each run by both variants)")
    p.add_argument("--batches", type=int, default=4, help="inference batches (each run by both variants)")
    p.add_argument("--out", default="bench_out/subsampling_step.json", help="JSON results")
    a = p.parse_intermixed_args(argv)

    import torch
    from tqdm import tqdm

    from snlu import run
    from snlu.data.batching import make_loader
    from snlu.encoders.subsampling import Conv2dSubsampling
    from snlu.training.trainer import Trainer, to_device

    cfg = run.load(a.recipe, a.overrides)
    built = run.build(cfg)  # seeded, as snlu-train builds it
    task, train = built.task, built.splits["train"]
    tc = cfg.train
    loader = make_loader(train, task.processor, tc.batch_size, tc.bucket_size, True, 0, cfg.seed)
    loader.batch_sampler.set_epoch(1)
    batches = []
    for batch in loader:  # prepared up front: the timing is the model's
        batches.append(batch)
        if len(batches) == max(a.steps, a.batches) + 1:
            break
    variants = {"plain": plain_forward, "snlu": Conv2dSubsampling.forward}
    times: dict[str, dict[str, list[tuple[float, float]]]] = {m: {v: [] for v in variants} for m in ("train", "infer")}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, cfg, Path(tmp))
        trainer.tracker.enabled = False
        task.train()
        trainer.train_step([batches[0]], epoch=1, n=1)  # warm-up
        try:
            with tqdm(total=2 * (a.steps + a.batches), desc="steps", leave=False) as bar:
                for mode, n in (("train", a.steps), ("infer", a.batches)):
                    task.train(mode == "train")
                    for i, batch in enumerate(batches[1 : n + 1]):
                        order = list(variants) if i % 2 == 0 else list(variants)[::-1]
                        for name in order:
                            Conv2dSubsampling.forward = variants[name]
                            start, cpu = time.perf_counter(), time.process_time()
                            if mode == "train":
                                trainer.train_step([batch], epoch=1, n=1)
                            else:
                                with torch.no_grad():
                                    task.predict(to_device(batch, trainer.device))
                            times[mode][name].append((time.perf_counter() - start, time.process_time() - cpu))
                            bar.update()
        finally:
            Conv2dSubsampling.forward = variants["snlu"]
    result = {m: {v: stats(r) for v, r in per.items()} for m, per in times.items()}
    for m, per in result.items():
        per["speedup_median"] = round(per["plain"]["median_ms"] / per["snlu"]["median_ms"], 3)
        per["cpu_speedup_median"] = round(per["plain"]["median_cpu_ms"] / per["snlu"]["median_cpu_ms"], 3)
        # batch by batch (both variants ran the same batch): the median of the ratios, robust to batch lengths
        pairs = zip(times[m]["plain"], times[m]["snlu"])
        per["paired_speedup_median"] = round(statistics.median(p[0] / s[0] for p, s in pairs), 3)
        for v in variants:
            s = per[v]
            print(f"{m:5s} {v:5s} wall ms {s['min_ms']:7.0f} / {s['median_ms']:7.0f} / {s['max_ms']:7.0f}  "
                  f"cpu ms {s['median_cpu_ms']:7.0f}")
        print(f"{m:5s} speed-up of the median: wall x{per['speedup_median']:.3f}, "
              f"cpu x{per['cpu_speedup_median']:.3f}; median per-batch speed-up x{per['paired_speedup_median']:.3f}")
    mean_seconds = [round(sum(u.duration for u in b["utts"]) / len(b["utts"]), 2) for b in batches[1:]]
    report = {"recipe": a.recipe, "overrides": a.overrides, "threads": torch.get_num_threads(),
              "batch_size": tc.batch_size, "mean_utterance_seconds": mean_seconds,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **result}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
