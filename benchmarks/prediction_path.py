"""What the prediction routine costs, against what ``snlu-bench`` timed before it ran that routine.

    python benchmarks/prediction_path.py [RECIPE] [key=value ...] [--utts 48] [--batch-size 16] [--repeat 5]
        [--json OUT.json]

Builds the recipe's task on its data (default: ``recipes/fusion_raw_all.yaml`` on the demo corpus; fresh
weights: the cost does not depend on them), takes the first ``--utts`` dev utterances and times, interleaved
``--repeat`` times (the median reported, the first pass not counted):

- ``model_autocast``: batches prepared once, ``task.predict`` under the recipe's ``train.amp`` (the old
  ``snlu-bench`` inference column);
- ``model_float32``: the same without autocast (what ``snlu-predict`` ran for a ``train.amp=bf16`` run before
  the routine honoured ``train.amp``);
- ``routine``: ``snlu.inference.predict_utterances`` (what ``snlu-predict``, ``snlu.load().predict``, dev
  evaluation and now ``snlu-bench`` run: features computed in the main process, the run's ``train.amp``);
- ``routine_off``: the same with ``amp="off"``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fusion_raw_all.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=str(RECIPE))
    p.add_argument("overrides", nargs="*", help="recipe overrides")
    p.add_argument("--utts", type=int, default=48, help="dev utterances")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5, help="timed passes of each way")
    p.add_argument("--json", help="write the numbers to this file")
    a = p.parse_args()

    import torch

    from snlu import run
    from snlu.core.devices import amp_dtype, to_device
    from snlu.data.batching import make_loader
    from snlu.inference import amp_setting, predict_utterances

    cfg = run.load(a.recipe, [*a.overrides, "train.device=cpu"])
    built = run.build(cfg)
    task, utts = built.task.eval(), built.splits["dev"][: a.utts]
    dtype = amp_dtype(amp_setting(task, None), torch.device("cpu"))
    loader = make_loader(utts, task.processor, a.batch_size, bucket_size=1, shuffle=False, num_workers=0)
    batches = [to_device(b, torch.device("cpu")) for b in loader]

    @torch.no_grad()
    def model(autocast: bool) -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=autocast and dtype is not None):
            for b in batches:
                task.predict(b)

    ways = {
        "model_autocast": lambda: model(True),
        "model_float32": lambda: model(False),
        "routine": lambda: predict_utterances(task, utts, a.batch_size, "cpu", progress=False),
        "routine_off": lambda: predict_utterances(task, utts, a.batch_size, "cpu", progress=False, amp="off"),
    }
    times: dict[str, list[float]] = {k: [] for k in ways}
    for i in range(a.repeat + 1):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            if i:  # the first pass warms up
                times[name].append(time.perf_counter() - start)
    out = {"recipe": a.recipe, "overrides": a.overrides, "amp": str(dtype), "utterances": len(utts),
           "threads": torch.get_num_threads(),
           "utt_per_s": {k: len(utts) / statistics.median(v) for k, v in times.items()},
           "seconds": times}
    for name, rate in out["utt_per_s"].items():
        print(f"{name:>15}: {rate:7.2f} utt/s")
    rate = out["utt_per_s"]
    print(f"routine / model_autocast: {rate['routine'] / rate['model_autocast']:.2f}; "
          f"model_autocast / model_float32: {rate['model_autocast'] / rate['model_float32']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
