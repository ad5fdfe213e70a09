"""Formulations of the Conv2d subsampling front (snlu/encoders/subsampling.py), checked and timed.

    python benchmarks/subsampling.py [--frames 300 400 500] [--bins 40 80] [--batch 16] [--repeats 5]
                                     [--threads 2] [--device cpu] [--out bench_out/subsampling.json]

Every candidate computes ``Conv2d(1, 256, 3, 2) + ReLU + Conv2d(256, 256, 3, 2) + ReLU + Linear(256 F', 256)``
with the same module's parameters. Before timing, each is checked against ``plain`` (the module as first
written: NCHW ``nn.Conv2d`` stack, transpose, Linear) in float64, outputs and the gradients of every
parameter (float32 rounding flips ReLUs at pre-activations near zero, so gradients are compared where they
are exact); a candidate that does not match is reported and not timed. Then, per shape (batch x frames x
mel bins), ``train`` times forward + backward (parameter gradients, as in training: the features need none)
and ``infer`` the forward under ``no_grad``; the candidates take turns within each repeat, so a busy machine
slows them alike. Prints min / median / max milliseconds and the median's speed-up over ``plain``; writes
everything to ``--out`` as JSON.

Candidates:
  plain           NCHW nn.Conv2d (oneDNN: blocked layout, reorders around each convolution), transpose copy
  onednn_off      plain with torch.backends.mkldnn disabled (PyTorch's own im2col + BLAS convolution)
  channels_last   oneDNN in NHWC: the first convolution's output converted to channels-last, the second in
                  NHWC, the Linear over (T', F', C) with its weight permuted (no transpose copy)
  unfold_addmm    the one-channel first convolution as addmm(bias, 3x3 patches, (9, C) weight) + ReLU (NHWC
                  output, no oneDNN), the second in NHWC, the permuted Linear
  ones_column     as unfold_addmm, with a tenth column of ones and the bias as a tenth row of a row-major
                  (10, C) weight (no pass filling the output with the bias; ~10x faster weight gradient)
  snlu            the module's forward: as unfold_addmm, with the (9, C) weight made row-major (autograd then
                  computes its gradient as patches^T @ grad, ~10x faster than (grad^T @ patches)^T)
  im2col_both     as snlu, and the second convolution as im2col (3x3 x C patches) + one matmul as well
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from snlu.encoders.subsampling import Conv2dSubsampling, first_conv, flatten_weight

Candidate = Callable[[Conv2dSubsampling, Tensor], Tensor]
CHANNELS = 256


def plain(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    x = m.conv(feats.unsqueeze(1))  # (B, C, T', F')
    b, c, t, f = x.shape
    return m.out(x.transpose(1, 2).reshape(b, t, c * f))


def onednn_off(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setting the flags warns about Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            return plain(m, feats)


def linear_nhwc(m: Conv2dSubsampling, x: Tensor) -> Tensor:
    """The output Linear over (B, T', F', C) as it lies."""
    b, t, f, c = x.shape
    return F.linear(x.reshape(b, t, f * c), flatten_weight(m.out, c, f), m.out.bias)


def channels_last(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    cl = torch.channels_last
    first, second = m.conv[0], m.conv[2]
    x = F.relu(F.conv2d(feats.unsqueeze(1), first.weight, first.bias, 2)).contiguous(memory_format=cl)
    x = F.relu(F.conv2d(x, second.weight.contiguous(memory_format=cl), second.bias, 2))
    return linear_nhwc(m, x.permute(0, 2, 3, 1))


def unfold_addmm(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    first, second = m.conv[0], m.conv[2]
    patches = feats.unfold(1, 3, 2).unfold(2, 3, 2)  # (B, T1, F1, 3, 3)
    b, t, f = patches.shape[:3]
    x = torch.addmm(first.bias, patches.reshape(-1, 9), first.weight.view(CHANNELS, 9).t()).relu_()
    x = F.relu(F.conv2d(x.view(b, t, f, CHANNELS).permute(0, 3, 1, 2), second.weight, second.bias, 2))
    return linear_nhwc(m, x.permute(0, 2, 3, 1))


def ones_column(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    first, second = m.conv[0], m.conv[2]
    patches = feats.unfold(1, 3, 2).unfold(2, 3, 2)  # (B, T1, F1, 3, 3)
    b, t, f = patches.shape[:3]
    cols = torch.cat([patches.reshape(b, t, f, 9), patches.new_ones(b, t, f, 1)], dim=-1).view(-1, 10)
    x = (cols @ torch.cat([first.weight.view(CHANNELS, 9).t(), first.bias[None]])).relu_()
    x = F.relu(F.conv2d(x.view(b, t, f, CHANNELS).permute(0, 3, 1, 2), second.weight, second.bias, 2))
    return linear_nhwc(m, x.permute(0, 2, 3, 1))


def snlu(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    return m(feats, torch.full((feats.shape[0],), feats.shape[1]))[0]


def im2col_both(m: Conv2dSubsampling, feats: Tensor) -> Tensor:
    second = m.conv[2]
    x = first_conv(feats, m.conv[0])  # (B, T1, F1, C)
    cols = x.unfold(1, 3, 2).unfold(2, 3, 2)  # (B, T', F', C, 3, 3): the weight's (C, kh, kw) order
    b, t, f = cols.shape[:3]
    y = torch.addmm(second.bias, cols.reshape(b * t * f, -1), second.weight.view(CHANNELS, -1).t()).relu_()
    return linear_nhwc(m, y.view(b, t, f, CHANNELS))


CANDIDATES: dict[str, Candidate] = {
    "plain": plain, "onednn_off": onednn_off, "channels_last": channels_last, "unfold_addmm": unfold_addmm,
    "ones_column": ones_column, "snlu": snlu, "im2col_both": im2col_both,
}


def max_rel_errors(fn: Candidate, module: Conv2dSubsampling, feats: Tensor) -> dict[str, float]:
    """Largest |difference| / largest |reference| of the output and of each parameter's gradient against
    ``plain``, both computed in float64."""
    m = Conv2dSubsampling(feats.shape[2], CHANNELS).double()
    m.load_state_dict(module.state_dict())
    x = feats.double()
    params = list(m.parameters())
    ref = plain(m, x)
    weights = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref_grads = torch.autograd.grad((ref * weights).sum(), params)
    out = fn(m, x)
    grads = torch.autograd.grad((out * weights).sum(), params)
    errs = {"output": ((out - ref).abs().max() / ref.abs().max()).item()}
    for (name, _), g, r in zip(m.named_parameters(), grads, ref_grads):
        errs[name] = ((g - r).abs().max() / r.abs().max()).item()
    return errs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(fn: Candidate, module: Conv2dSubsampling, feats: Tensor, mode: str) -> tuple[float, float, int]:
    """Wall-clock and process CPU seconds of one forward (+ backward) of ``fn``, and the page faults it took
    (a fresh allocation over glibc's mmap threshold, 32 MB at most, is mapped anew and faulted in page by page)."""
    device = feats.device
    sync(device)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start, cpu = time.perf_counter(), time.process_time()
    if mode == "train":
        out = fn(module, feats)
        torch.autograd.grad(out.sum(), list(module.parameters()))
    else:
        with torch.no_grad():
            fn(module, feats)
    sync(device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def stats(runs: list[tuple[float, float, int]]) -> dict[str, float]:
    """min / median / max of the wall-clock milliseconds, the median CPU milliseconds (all threads) and the
    median page faults."""
    ms = [1000 * s for s, _, _ in runs]
    return {"min_ms": round(min(ms), 1), "median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
            "median_cpu_ms": round(statistics.median(1000 * c for _, c, _ in runs), 1),
            "median_page_faults": int(statistics.median(n for _, _, n in runs))}


def bench_shape(names: list[str], b: int, t: int, f: int, args: argparse.Namespace, device: torch.device,
                bar: tqdm) -> dict[str, Any]:
    """Timings of ``names`` on one (b, t, f) batch, both modes, candidates interleaved within each repeat."""
    torch.manual_seed(0)
    module = Conv2dSubsampling(f, CHANNELS).to(device)
    feats = torch.randn(b, t, f, device=device)
    out: dict[str, Any] = {"batch": b, "frames": t, "bins": f}
    for mode in ("train", "infer"):
        times: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
        for n in names:
            run_once(CANDIDATES[n], module, feats, mode)  # warm-up: allocator, oneDNN primitive cache
        for _ in range(args.repeats):
            for n in names:
                times[n].append(run_once(CANDIDATES[n], module, feats, mode))
                bar.update()
        out[mode] = {n: stats(v) for n, v in times.items()}
        for v in out[mode].values():
            v["speedup_vs_plain"] = round(out[mode]["plain"]["median_ms"] / v["median_ms"], 3)
    return out


def show(r: dict[str, Any]) -> str:
    lines = [f"-- batch {r['batch']} x {r['frames']} frames x {r['bins']} bins (wall ms: min / median / max, "
             "speed-up of the median over plain; median CPU ms, page faults)"]
    for n in r["train"]:
        cells = [f"{m} {r[m][n]['min_ms']:6.0f} / {r[m][n]['median_ms']:6.0f} / {r[m][n]['max_ms']:6.0f} "
                 f"x{r[m][n]['speedup_vs_plain']:.2f} (cpu {r[m][n]['median_cpu_ms']:5.0f}, "
                 f"{r[m][n]['median_page_faults'] // 1000:3d}k pf)" for m in ("train", "infer")]
        lines.append(f"{n:14s} " + "   ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[300, 400, 500], help="padded frame counts T")
    p.add_argument("--bins", type=int, nargs="+", default=[40, 80], help="mel bins F")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per candidate, shape and mode")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--out", default="bench_out/subsampling.json", help="JSON results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = ["plain", *(n for n in args.candidates if n != "plain")]

    torch.manual_seed(0)
    check_feats = torch.randn(3, 61, 40)
    check_feats[1, 45:] = 0.0  # padding, and odd lengths
    module = Conv2dSubsampling(40, CHANNELS)
    checks = {n: max_rel_errors(CANDIDATES[n], module, check_feats) for n in names}
    exact = [n for n in names if max(checks[n].values()) < 1e-9]
    for n in names:
        worst = max(checks[n], key=checks[n].get)
        print(f"check {n:14s} {'exact' if n in exact else 'DIFFERS'} (float64, worst relative error "
              f"{checks[n][worst]:.1e} in {worst})")

    shapes = [(args.batch, t, f) for f in args.bins for t in args.frames]
    report = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "repeats": args.repeats, "checks_float64_max_rel_error": checks, "exact": exact, "results": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(shapes) * 2 * args.repeats * len(exact), desc="subsampling", leave=False) as bar:
        for b, t, f in shapes:
            report["results"].append(bench_shape(exact, b, t, f, args, device, bar))
            tqdm.write(show(report["results"][-1]))
            out.write_text(json.dumps(report, indent=1))  # after every shape: a stopped run keeps what it measured
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
