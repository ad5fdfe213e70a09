"""``snlu-export RUN_DIR [--format onnx|pt2] [--out DIR] [--opset N] [--decode numpy|graph]``: a trained model as a
self-contained folder that runs without torch (onnxruntime, numpy, the tokenizer).

RUN_DIR is a run directory or its ``best/`` folder (spoken_ner, text_ner, asr, e2e_ner). The folder (default
``RUN_DIR/export-<format>``) holds the graph (16 kHz waveforms and word-piece ids in, scores out; Kaldi fbank and
the frontend's normalisation inside), the tokenizer, the label and unit maps, the recipe and ``export.json``.
Batch, audio and text lengths are dynamic. The export checks itself on example inputs against the model before
it writes anything. ``snlu.load(DIR)``, ``snlu-predict DIR`` and ``snlu-eval DIR`` run it; docs/inference.md.
"""

from __future__ import annotations

import argparse
import logging

from snlu.cli.common import run_main
from snlu.core.logs import setup_logging

log = logging.getLogger("snlu")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="snlu-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="a run directory or its best/ folder")
    p.add_argument("--format", default="onnx", choices=["onnx", "pt2"],
                   help="onnx (onnxruntime, no torch needed to run) or pt2 (torch.export's program; default onnx)")
    p.add_argument("--out", help="the folder to write (must not exist or be empty; default RUN_DIR/export-FORMAT)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: torch.onnx's)")
    p.add_argument("--decode", default="numpy", choices=["numpy", "graph"],
                   help="NER models: the CRF's Viterbi in numpy beside the graph (default, faster) or inside it")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    setup_logging()
    from snlu.export.exporter import export  # (torch: after the arguments are checked)

    out = export(args.model_dir, args.out, args.format, args.opset, args.decode)
    from snlu.export.manifest import read_manifest

    m = read_manifest(out)
    check = m["verified"]
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    log.info("exported %s (%s) to %s in %.1f s: %.1f MB; checked on batches of %s: scores within %.1e of the "
             "model's, %d of %d predictions the same", m["task"], m["format"], out, m["export_seconds"], size,
             "/".join(map(str, check["batches"])), check["max_relative_diff"], check["same_predictions"],
             check["predictions"])
    return 0


def entry() -> None:
    run_main(main)


if __name__ == "__main__":
    entry()
