"""Is training memory flat in the number of utterances? Peak memory of ``snlu-train`` on N-utterance manifests.

    python benchmarks/scale_memory.py --sizes 1000 10000 --steps 30 --corpus /dev/shm/snlu_synth [--out bench_out]

Builds a synthetic corpus (``synth_corpus.py``: 1-3 s tones, random sentences with entities) of the largest
N once, writes a train manifest of the first N lines for each size (same dev/test, same audio folder), and
runs ``snlu-train ... train.max_steps=STEPS`` (it stops after ``--steps`` batches) in a subprocess per size,
sampling the memory of its process tree (``proctree.py``: trainer + DataLoader workers). A tiny audio
encoder keeps it quick; the BERT text encoder is the demo's. It also measures what the loaded utterance
lists cost in Python (tracemalloc), per utterance. Prints a table and writes ``OUT/scale_memory.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proctree import run_measured  # noqa: E402
from synth_corpus import build  # noqa: E402

SMALL = ["audio_encoder.n_blocks=1", "audio_encoder.ffn_dim=128", "audio_encoder.d_model=64", "train.epochs=1"]


def manifests(corpus: Path, sizes: list[int], out: Path) -> dict[int, Path]:
    """``out/train-N.jsonl``: the first N lines of the corpus's train split, for each N."""
    lines = (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()
    files = {}
    for n in sizes:
        files[n] = out / f"train-{n}.jsonl"
        files[n].write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return files


def load_cost(train: Path, corpus: Path) -> dict[str, Any]:
    """Python heap held by the loaded splits (``CnertaData.load``), total and per training utterance."""
    from snlu.data.cnerta import CnertaConfig, CnertaData

    cfg = CnertaConfig(train=str(train), dev=str(corpus / "dev.jsonl"), test=str(corpus / "test.jsonl"),
                       audio_dir=str(corpus / "wav"))
    gc.collect()
    tracemalloc.start()
    splits = CnertaData(cfg).load()
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(splits["train"])
    del splits
    return {"utterances": n, "held_mb": round(held / 2**20, 2), "load_peak_mb": round(peak / 2**20, 2),
            "bytes_per_utterance": round(held / n)}


def train_run(recipe: str, train: Path, corpus: Path, steps: int, workers: int, batch_size: int,
              work: Path, mmap_threshold: int = 0) -> dict[str, Any]:
    """One measured ``snlu-train`` run (its run folder is deleted afterwards); ``mmap_threshold`` > 0 fixes
    glibc's mmap threshold (``MALLOC_MMAP_THRESHOLD_``) for it and its workers."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    cmd = [sys.executable, "-m", "snlu.cli.train", recipe, *SMALL, f"train.max_steps={steps}",
           f"data.train={train}", f"data.dev={corpus / 'dev.jsonl'}", f"data.test={corpus / 'test.jsonl'}",
           f"data.audio_dir={corpus / 'wav'}", f"train.num_workers={workers}", f"train.batch_size={batch_size}",
           "train.device=cpu", "--output-dir", str(run_dir / "run")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    with open(work / f"{train.stem}-w{workers}-m{mmap_threshold}.log", "w") as log:
        result = run_measured(cmd, stdout=log, stderr=log, env=env)
    shutil.rmtree(run_dir, ignore_errors=True)
    if result["returncode"] != 0:
        raise SystemExit(f"snlu-train failed ({result['returncode']}): see {log.name}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--steps", type=int, default=30, help="training batches per run")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--mmap-threshold", type=int, nargs="+", default=[0, 131072],
                   help="glibc MALLOC_MMAP_THRESHOLD_ settings to run (0: glibc's default, a dynamic threshold)")
    p.add_argument("--recipe", default=str(HERE.parent / "recipes" / "fusion_raw_all.yaml"))
    p.add_argument("--corpus", help="synthetic corpus folder (default OUT/synth; /dev/shm is a good place)")
    p.add_argument("--out", default="bench_out", help="output folder")
    p.add_argument("--json", help="result file (default OUT/scale_memory.json)")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = build(Path(a.corpus) if a.corpus else out / "synth", max(a.sizes))
    files = manifests(corpus, a.sizes, out)
    loads = {n: load_cost(files[n], corpus) for n in a.sizes}
    lo, hi = min(a.sizes), max(a.sizes)
    slope = (loads[hi]["held_mb"] - loads[lo]["held_mb"]) * 2**20 / max(hi - lo, 1)
    print("utterance lists (main process): " + ", ".join(f"N={n}: {v['held_mb']} MB" for n, v in loads.items())
          + f" -> {slope:.0f} bytes per training utterance", flush=True)
    rows = []
    for threshold in a.mmap_threshold:
        for n in a.sizes:
            row = {"n_train": n, "mmap_threshold": threshold,
                   **train_run(a.recipe, files[n], corpus, a.steps, a.num_workers, a.batch_size, out, threshold)}
            rows.append(row)
            print(f"mmap_threshold={threshold or 'default':>7} N={n:>7}: peak PSS sum {row['peak_pss_sum_mb']:7.1f} MB"
                  f" | RSS sum {row['peak_rss_sum_mb']:7.1f} MB | largest process {row['max_single_hwm_mb']:7.1f} MB"
                  f" | {row['max_processes']} processes | {row['wall_s']} s", flush=True)
    growth = {}
    for threshold in a.mmap_threshold:
        pair = {r["n_train"]: r for r in rows if r["mmap_threshold"] == threshold}
        growth[str(threshold)] = {k: round(100 * (pair[hi][k] / pair[lo][k] - 1), 1)
                                  for k in ("peak_pss_sum_mb", "peak_rss_sum_mb", "max_single_hwm_mb")}
        print(f"mmap_threshold={threshold or 'default'}: N={hi} vs N={lo}: "
              + ", ".join(f"{k} {v:+.1f}%" for k, v in growth[str(threshold)].items()))
    result = {"steps": a.steps, "batch_size": a.batch_size, "num_workers": a.num_workers, "recipe": a.recipe,
              "overrides": SMALL, "cpu_count": os.cpu_count(), "load": loads,
              "bytes_per_utterance": round(slope), "runs": rows, "growth_percent": growth}
    path = Path(a.json) if a.json else out / "scale_memory.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
