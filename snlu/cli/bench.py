"""``snlu-bench RECIPE [RECIPE ...] [key=value ...]``: how fast a recipe's model trains and predicts, and how
close it gets to the machine's own limit (the FLOP/s of a dense matmul measured in the same run).

Prints one table per run and writes everything with ``--json OUT.json``; ``--markdown OUT.md`` writes the
results tables of docs/performance.md. The overrides apply to every recipe (e.g. ``train.device=cuda
train.amp=bf16``) and may come anywhere on the line, before, between or after the options; ``--also
'key=value ...'`` benches every recipe once more with those added (``--also train.amp=bf16``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

import torch

from snlu import run
from snlu.bench.bench import BenchOptions, bench
from snlu.cli.common import parse_intermixed, run_main, split_positionals
from snlu.config import FIXED_SECTIONS, load_raw
from snlu.core.devices import check_device
from snlu.core.errors import ConfigError
from snlu.core.logs import setup_logging

log = logging.getLogger("snlu")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="+", metavar="RECIPE | key=value",
                   help="recipe files and key=value overrides, anywhere on the line")
    p.add_argument("--warmup", type=int, default=BenchOptions.warmup, help="untimed training steps first")
    p.add_argument("--steps", type=int, default=BenchOptions.steps, help="timed training steps")
    p.add_argument("--infer-batches", type=int, default=BenchOptions.infer_batches, help="timed inference batches")
    p.add_argument("--also", action="append", default=[], metavar="'key=value ...'",
                   help="bench every recipe once more with these overrides (e.g. --also train.amp=bf16: the float32 "
                        "and bf16 rows in one command); repeat for more variants")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--markdown", help="write the results tables (Markdown) to this file")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def machine() -> str:
    """One line describing where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} threads{gpu}"


def show(name: str, r: dict[str, Any]) -> str:
    """A run's numbers as text."""
    t, i, peak = r["train"], r["infer"], r["matmul_peak"]
    step = t["step_ms"]
    lines = [
        f"== {name}: {r['task']}, {r['parameters_M']}M parameters, {r['device_name']}, batch {r['batch_size']}, "
        f"workers {r['num_workers']}, amp {r['amp']}, compile {r['compile']}",
        f"train   {t['utt_per_s']:.2f} utt/s  {t['audio_s_per_s']:.2f} audio-s/s  {step:.0f} ms/step  "
        f"data wait {100 * t['data_wait_fraction']:.1f} %",
        f"infer   {i['utt_per_s']:.2f} utt/s  {i['audio_s_per_s']:.2f} audio-s/s",
        f"FLOPs   {r['gflop_per_step']:.1f} GFLOP/step, achieved {r['achieved_gflop_per_s']:.1f} GFLOP/s = "
        f"{100 * r['fraction_of_peak']:.0f} % of the {peak['dtype']} matmul peak {peak['gflop_per_s']:.1f} GFLOP/s "
        f"(n={peak['size']})",
        f"padding efficiency {r['padding_efficiency']:.3f}, peak RSS {r['peak_rss_mb']:.0f} MB"
        + (f", CUDA max allocated {r['cuda_max_allocated_mb']:.0f} MB" if "cuda_max_allocated_mb" in r else ""),
        "breakdown (ms/step, instrumented pass): " + ", ".join(
            f"{k} {v:.1f}" for k, v in r["breakdown_ms"].items() if v or k in ("data_wait",)),
    ]
    return "\n".join(lines)


def markdown(results: dict[str, dict[str, Any]], where: str) -> str:
    """The two tables of docs/performance.md: throughput and efficiency, and where the time goes (% of an
    instrumented step)."""
    out = [f"Machine: {where}.", "",
           "| recipe | train utt/s | train audio-s/s | infer utt/s | GFLOP/step | achieved GFLOP/s | "
           "fraction of matmul peak | padding efficiency | data wait | peak memory |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        t = r["train"]
        mem = f"{r['cuda_max_allocated_mb']:.0f} MB (CUDA)" if "cuda_max_allocated_mb" in r else \
            f"{r['peak_rss_mb']:.0f} MB RSS"
        audio = f"{t['audio_s_per_s']:.2f}" if t["audio_s_per_s"] else "—"
        out.append(f"| {name} | {t['utt_per_s']:.2f} | {audio} | {r['infer']['utt_per_s']:.2f} | "
                   f"{r['gflop_per_step']:.1f} | {r['achieved_gflop_per_s']:.1f} | {r['fraction_of_peak']:.2f} "
                   f"(peak {r['matmul_peak']['gflop_per_s']:.0f}) | {r['padding_efficiency']:.3f} | "
                   f"{100 * t['data_wait_fraction']:.1f} % | {mem} |")
    seen = dict.fromkeys(k for r in results.values() for k in r["breakdown_ms"])  # data wait, the components
    # the task times (snlu.bench.timers: its recipe sections, in call order), other forward, backward, optimizer
    parts = [p for p in seen if any(r["breakdown_ms"].get(p) for r in results.values())]
    out += ["", "Share of each part in an instrumented step (the same batches again, every component timed):", "",
            "| recipe | step ms | " + " | ".join(parts) + " |", "|---|---|" + "---|" * len(parts)]
    for name, r in results.items():
        b = r["breakdown_ms"]
        total = sum(b.values())
        out.append(f"| {name} | {total:.0f} | " + " | ".join(f"{100 * b.get(p, 0.0) / total:.1f} %" for p in parts)
                   + " |")
    return "\n".join(out) + "\n"


def applicable(recipes: list[str], overrides: list[str]) -> dict[str, list[str]]:
    """Each recipe's overrides: those whose section the recipe has (``audio_encoder.*`` skips a text-only
    recipe). An override no recipe can take is an error, not silently dropped."""
    sections = {r: set(load_raw(r)) | set(FIXED_SECTIONS) for r in recipes}
    out = {r: [o for o in overrides if o.split("=", 1)[0].split(".")[0] in sections[r]] for r in recipes}
    for o in overrides:
        if not any(o in out[r] for r in recipes):
            raise ConfigError(f"{o}: no recipe among {', '.join(recipes)} has section '{o.split('.')[0]}'")
    for r in recipes:
        skipped = [o for o in overrides if o not in out[r]]
        if skipped:
            log.info("%s: not applying %s (no such section)", r, ", ".join(skipped))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_intermixed(parser(), argv)
    setup_logging()
    recipes, overrides = split_positionals(args.items, "recipe", most=None)
    if not recipes:
        parser().error("at least one recipe is required")
    opts = BenchOptions(args.warmup, args.steps, args.infer_batches)
    results: dict[str, dict[str, Any]] = {}
    variants = [[], *(extra.split() for extra in args.also)]
    per_recipe = [applicable(recipes, [*overrides, *extra]) for extra in variants]  # (all checked first)
    for extra, applied in zip(variants, per_recipe):
        for recipe in recipes:
            cfg = run.load(recipe, applied[recipe])
            check_device(cfg.train.device, f"train.device={cfg.train.device}")
            name = ", ".join([Path(recipe).stem, *(f"`{e}`" for e in extra)])
            results[name] = {"recipe": recipe, "overrides": [*overrides, *extra], **bench(cfg, opts)}
            print(show(name, results[name]), flush=True)
    where = machine()
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": where, "results": results}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(results, where))
    return 0


def entry() -> None:
    run_main(main)


if __name__ == "__main__":
    entry()
