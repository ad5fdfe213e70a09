"""Inference time of a recipe's model, the model alone: batches prepared once, then ``task.predict`` timed.

    python benchmarks/inference_speed.py [RECIPE] [key=value ...] [--utts 48] [--batch-size 16] [--repeat 5]

Builds the recipe's task on its data (default: ``recipes/fusion_raw_all.yaml`` at full size on the demo corpus),
prepares the first ``--utts`` dev utterances in length-sorted batches, and times ``predict`` over all of them
``--repeat`` times (eval mode, no gradients, the first pass not counted); prints the median and how many times the
CTC head and the audio tokenizer ran. Written to compare versions of snlu (it runs on releases before and after
the task split: it reads ``task.processor`` when there is one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fusion_raw_all.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=str(RECIPE))
    p.add_argument("overrides", nargs="*", help="recipe overrides")
    p.add_argument("--utts", type=int, default=48, help="dev utterances")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5, help="timed passes over the batches")
    a = p.parse_args()

    import torch

    from snlu.config import load_recipe
    from snlu.core.seed import seed_everything
    from snlu.registry import DATASETS, TASKS

    cfg = load_recipe(a.recipe, [*a.overrides, "train.device=cpu"])
    seed_everything(cfg.seed)
    task_cls = TASKS.get(cfg.task.name).cls
    splits = DATASETS.build(cfg.data).load(with_audio=task_cls.uses_audio)
    task = task_cls.from_data(cfg, splits["train"]).eval()
    processor = getattr(task, "processor", task)  # (older releases prepared data on the task itself)
    utts = sorted(splits["dev"][: a.utts], key=processor.length)
    batches = [processor.collate([processor.prepare(u) for u in utts[i : i + a.batch_size]])
               for i in range(0, len(utts), a.batch_size)]
    runs: Counter = Counter()
    for name in ("ctc_head", "audio_tokenizer"):
        if hasattr(task, name):
            getattr(task, name).register_forward_hook(lambda *_, n=name: runs.update([n]))
    seconds = []
    with torch.no_grad():
        for r in range(a.repeat + 1):
            start = time.perf_counter()
            for b in batches:
                task.predict(b)
            if r:  # the first pass warms up
                seconds.append(time.perf_counter() - start)
    per_pass = {k: v // (a.repeat + 1) for k, v in runs.items()}
    median = statistics.median(seconds)
    print(f"{Path(a.recipe).stem}: {len(utts)} utterances in {len(batches)} batches, torch threads "
          f"{torch.get_num_threads()}: median {1000 * median:.0f} ms per pass ({len(utts) / median:.1f} utt/s; "
          f"passes {', '.join(f'{1000 * s:.0f}' for s in seconds)} ms); runs per pass: "
          f"{dict(per_pass) or 'no CTC head, no tokenizer'}")


if __name__ == "__main__":
    main()
