"""CPU cost of the pretrained speech encoders (``hf_ssl``, ``whisper_encoder``) on random models of real sizes:
seconds per utterance frozen (a forward pass, what building the feature cache costs) and fine-tuned (forward and
backward of a training step), peak memory, and what ``exact_batches`` costs for a group-norm model.

    python benchmarks/ssl_speed.py [--sizes tiny base] [--families hubert whisper] [--utts 8] [--seconds 3]
                                   [--out ssl_speed.json]

Each case runs in a process of its own (its peak RSS is the case's). The models are random (no download):
``tiny`` is the test suite's (hidden 32, 2 layers), ``base`` the released base sizes (HuBERT/wav2vec 2.0 base:
hidden 768, 12 layers, 94 M parameters; Whisper base's encoder: d 512, 6 layers, 30 s windows). Utterances are
``--utts`` random waves of ``--seconds`` +- 25 %, batches of 4 (training) and ``--utts`` (frozen).
Training speed over cached frozen features is ``snlu-bench recipes/fusion_raw_all_ssl.yaml ...
data.feature_cache=DIR``: see docs/ssl.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BASE = {
    "hubert": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
               "conv_dim": (512,) * 7, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16},
    "whisper": {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048,
                "max_source_positions": 1500},
}
MODES = ("frozen", "frozen_batched", "finetune")  # frozen_batched: exact_batches=false (hubert only)


def waves(n: int, seconds: float):
    import torch

    g = torch.Generator().manual_seed(0)
    lengths = [int(16000 * seconds * (0.75 + 0.5 * i / max(n - 1, 1))) for i in range(n)]
    x = torch.randn(n, max(lengths), generator=g) * 0.1
    lens = torch.tensor(lengths)
    return (x * (torch.arange(x.shape[1])[None] < lens[:, None]))[..., None], lens


def one_case(family: str, size: str, mode: str, utts: int, seconds: float) -> dict:
    """Time one (family, size, mode) in this process."""
    import torch

    from snlu.plugins import load_builtins
    from snlu.registry import AUDIO_ENCODERS
    from snlu.testing import random_speech_model

    load_builtins()
    with tempfile.TemporaryDirectory() as tmp:
        folder = random_speech_model(Path(tmp) / family, family, **(BASE[family] if size == "base" else {}))
        options = {"path": str(folder), "layer": "weighted", "freeze": "all" if mode.startswith("frozen") else
                   "feature_encoder", "exact_batches": mode != "frozen_batched"}
        if family == "whisper":
            options.pop("exact_batches")
        enc = AUDIO_ENCODERS.build("whisper_encoder" if family == "whisper" else "hf_ssl", 1, config=options)
    x, lens = waves(utts, seconds)
    params = sum(p.numel() for p in enc.model.parameters()) / 1e6
    times = []  # (wall, CPU) seconds: on a shared machine the CPU time is the steadier of the two

    def timed(fn) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))

    if mode.startswith("frozen"):
        enc.eval()
        with torch.no_grad():
            for _ in range(3):  # the first pass warms up
                timed(lambda: enc(x, lens))
        n = utts
    else:
        enc.train()

        def step(b: slice) -> None:
            y, _ = enc(x[b, : int(lens[b].max())], lens[b])
            y.pow(2).mean().backward()
            enc.zero_grad(set_to_none=True)

        for i in range(0, 3 * 4, 4):  # three steps of 4 utterances, the first a warm-up
            timed(lambda i=i: step(slice(i % utts, i % utts + 4)))
        n = 4
    wall, cpu = min(times[1:])
    return {"family": family, "size": size, "mode": mode, "backbone_M": round(params, 2),
            "s_per_utt": round(wall / n, 4), "cpu_s_per_utt": round(cpu / n, 4),
            "audio_s_per_s": round(seconds * n / wall, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    p.add_argument("--families", nargs="+", default=["hubert", "whisper"], choices=["hubert", "whisper"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--utts", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0, help="mean utterance length (the demo corpus: 2.8 s)")
    p.add_argument("--out", help="write the results (JSON) here")
    p.add_argument("--case", help=argparse.SUPPRESS)  # family:size:mode, in a child process
    a = p.parse_args()
    if a.case:
        print(json.dumps(one_case(*a.case.split(":"), a.utts, a.seconds)))
        return
    results = []
    for size in a.sizes:
        for family in a.families:
            for mode in a.modes:
                if mode == "frozen_batched" and family == "whisper":
                    continue  # Whisper's windows are exact batched already
                out = subprocess.run([sys.executable, __file__, "--case", f"{family}:{size}:{mode}", "--utts",
                                      str(a.utts), "--seconds", str(a.seconds)], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{family} {size} {mode} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(r)
                print(f"{family:8} {size:5} {mode:15} backbone {r['backbone_M']:6.2f} M  {r['s_per_utt']:8.3f} s/utt "
                      f"(CPU {r['cpu_s_per_utt']:7.3f} s)  {r['audio_s_per_s']:7.2f} audio-s/s  peak RSS "
                      f"{r['peak_rss_mb']} MB  load {r['load_average']:.1f}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"utts": a.utts, "seconds": a.seconds, "results": results}, indent=1))


if __name__ == "__main__":
    main()
