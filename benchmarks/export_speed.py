"""Exported (onnxruntime) against eager PyTorch inference of a trained run, end to end on a data file: utterances/s
at each batch size and thread count, the F1 (or CER) of each, the export's time and folder size; optionally the
CRF's Viterbi inside the graph against numpy, and int8 dynamic quantisation of the MatMul weights.

    python benchmarks/export_speed.py RUN_DIR [--data test.jsonl] [--batch-sizes 1 16] [--threads 1 2]
        [--repeat 3] [--exported DIR] [--decode-graph] [--int8] [--json OUT.json] [--work DIR]

Both sides do the whole job of ``snlu-predict``: read each WAV file, compute features, run the model, decode
(the eager one: snlu.inference.predict_utterances; the exported one: snlu.export.runtime). Each setting runs
``--repeat`` timed passes after one untimed pass; the median is printed. ``--exported``: an existing export of the
run (snlu-export's default numpy decoding; its manifest gives the export time) instead of exporting again. The
data default is the run's ``data.test`` (the demo corpus's test split when the recipe left it null). Prints a
table and writes JSON with the machine's conditions (load average before and after: the numbers of a shared
machine say so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls after one untimed call, and the last result."""
    out = fn()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def test_data(run: Path) -> Path:
    from omegaconf import OmegaConf

    from snlu.registry import DATASETS

    cfg = OmegaConf.load(run / "config.yaml")
    files, _ = DATASETS.build(cfg.data).paths()
    return files["test"]


def quantize(folder: Path, out: Path) -> Path:
    """A copy of an exported folder whose graph has int8 MatMul/Gemm weights (onnxruntime's dynamic
    quantisation: activations quantised on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shutil.copytree(folder, out)
    quantize_dynamic(str(folder / "model.onnx"), str(out / "model.onnx"), op_types_to_quantize=["MatMul", "Gemm"],
                     weight_type=QuantType.QInt8)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run directory (or its best/)")
    p.add_argument("--data", help="CNERTA JSONL to predict (default: the run's test split)")
    p.add_argument("--audio-dir")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--exported", help="an existing snlu-export folder of the run (default: export it here)")
    p.add_argument("--decode-graph", action="store_true", help="also export with the CRF's Viterbi in the graph")
    p.add_argument("--int8", action="store_true", help="also int8 dynamic quantisation of the MatMul weights")
    p.add_argument("--json", help="write the results here (default: print only)")
    p.add_argument("--work", help="where the exported folders go (default: a temporary folder, removed)")
    a = p.parse_args()

    import torch

    from snlu.data.inputs import read_inputs
    from snlu.export.exporter import export, model_folder
    from snlu.export.runtime import load_task
    from snlu.inference import predict_utterances
    from snlu.tasks.base import Task

    load_before = os.getloadavg()
    run = model_folder(Path(a.run))
    data = Path(a.data) if a.data else test_data(run)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="export_speed-"))
    work.mkdir(parents=True, exist_ok=True)
    variants: dict[str, Path] = {}
    exports = {}
    if a.exported:
        manifest = json.loads((Path(a.exported) / "export.json").read_text())
        exports["onnx"] = {"seconds": manifest["export_seconds"], "folder_mb": round(folder_mb(Path(a.exported)), 1)}
        variants["onnx"] = Path(a.exported)
    todo = [] if a.exported else [("onnx", "numpy")]
    for name, decode in [*todo, *([("onnx, Viterbi in the graph", "graph")] if a.decode_graph else [])]:
        out = work / f"export-{decode}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        export(run, out, decode=decode)
        exports[name] = {"seconds": round(time.perf_counter() - start, 1), "folder_mb": round(folder_mb(out), 1)}
        variants[name] = out
        print(f"export ({decode} decoding): {exports[name]['seconds']} s, {exports[name]['folder_mb']} MB")
    if a.int8:
        out = work / "export-int8"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        variants["onnx int8"] = quantize(variants["onnx"], out)
        exports["onnx int8"] = {"seconds": round(time.perf_counter() - start, 1), "folder_mb": round(folder_mb(out), 1)}

    task = Task.load(run).eval()
    utts = read_inputs(data, task, a.audio_dir, require_entities=True)
    metric = task.main_metric
    rows = []
    for threads in a.threads:
        torch.set_num_threads(threads)
        for batch in a.batch_sizes:
            seconds, preds = timed(lambda b=batch: predict_utterances(task, utts, b, "cpu", progress=False), a.repeat)
            eager = preds
            rows.append({"engine": "eager PyTorch", "threads": threads, "batch": batch, "seconds": seconds,
                         "utt_per_s": len(utts) / seconds, metric: task.evaluate(utts, preds)[metric],
                         "same_predictions": len(utts)})
            for name, folder in variants.items():
                runtime = load_task(folder, "cpu", threads=threads)
                seconds, preds = timed(lambda b=batch, r=runtime: r.predict_utterances(utts, b), a.repeat)
                rows.append({"engine": name, "threads": threads, "batch": batch, "seconds": seconds,
                             "utt_per_s": len(utts) / seconds, metric: runtime.evaluate(utts, preds)[metric],
                             "same_predictions": sum(p == q for p, q in zip(preds, eager))})
            for row in rows[-1 - len(variants):]:
                print(f"{row['engine']:28s} threads {threads} batch {batch:3d}: {row['utt_per_s']:7.2f} utt/s  "
                      f"{metric} {row[metric]:.4f}  same predictions {row['same_predictions']}/{len(utts)}")
    result = {
        "run": str(run), "data": str(data), "utterances": len(utts), "repeat": a.repeat, "exports": exports,
        "rows": rows,
        "conditions": {"cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                       "load_average_before": load_before, "load_average_after": os.getloadavg(),
                       "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__},
    }
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {a.json}")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
