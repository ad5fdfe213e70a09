"""How much faster snlu trains and predicts than the reference's way of batching, on the same utterances.

    python benchmarks/reference_compare.py [--recipe recipes/fusion_raw_all.yaml] [--steps 5] [--batches 3]
        [--settings reference batch_max bucketed snlu] [--out bench_out/reference_compare.json] [key=value ...]

Settings, each one change away from the one before (a ladder from the reference to snlu):

  reference  every batch padded to the recipe's ``data.max_frames`` (1468) frames and ``data.max_chars`` (50)
             characters (50 + 2 word pieces), random batches (no length bucketing), dropout at every place
             in the speech encoder (``audio_encoder.attention_dropout=0.1 ffn_dropout=0.1 pos_dropout=0.1``),
             inference with autograd on
  batch_max  the same, padded to the longest utterance of each batch instead
  bucketed   the same, batches cut from length-sorted chunks (``train.bucket_size``; sorted for inference)
  snlu       snlu's default: as bucketed, with the recipe's dropout placement and inference under no_grad

The utterances are the same for every setting: a seeded shuffle of the training split (the demo corpus by
default), its first ``steps x train.batch_size`` for training and ``batches x train.eval_batch_size`` for
inference; each setting batches them its own way (random settings in the shuffled order). Items are
prepared once (``task.processor.prepare``) outside the timing, so the times are the model's: training steps are the
trainer's own (``Trainer.train_step``: loss, backward, clipping, optimizer), inference is ``task.predict``
in eval mode. Every setting starts from the same seed (the same weights) and runs one untimed step and
one untimed inference batch first. Prints a table with each setting's speed-up over ``reference`` (total
time over the same utterances) and writes everything, the shape of every batch included, to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fusion_raw_all.yaml"
DROPOUT_EVERYWHERE = ("audio_encoder.attention_dropout=0.1", "audio_encoder.ffn_dropout=0.1",
                      "audio_encoder.pos_dropout=0.1")


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    fixed_padding: bool  # pad to data.max_frames / data.max_chars instead of the batch's longest
    bucketing: bool  # length-bucketed batches (sorted for inference) instead of random ones
    dropout_everywhere: bool  # DROPOUT_EVERYWHERE on top of the recipe
    no_grad: bool  # inference under torch.no_grad


SETTINGS = {s.name: s for s in (
    Setting("reference", fixed_padding=True, bucketing=False, dropout_everywhere=True, no_grad=False),
    Setting("batch_max", fixed_padding=False, bucketing=False, dropout_everywhere=True, no_grad=False),
    Setting("bucketed", fixed_padding=False, bucketing=True, dropout_everywhere=True, no_grad=False),
    Setting("snlu", fixed_padding=False, bucketing=True, dropout_everywhere=False, no_grad=True),
)}


def pad_to(t: Any, dim: int, size: int, value: float) -> Any:
    """``t`` right-padded with ``value`` along ``dim`` to ``size`` (never cut: a longer one stays longer)."""
    import torch

    missing = size - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t, t.new_full(shape, value)], dim=dim)


def pad_fixed(batch: dict[str, Any], frames: int, chars: int, piece_pad: int, char_pad: int) -> dict[str, Any]:
    """A collated spoken-NER batch padded to ``frames`` feature frames, ``chars`` characters and word pieces
    (``chars`` + 2 with [CLS] and [SEP]); the length tensors keep the real lengths, so the model masks the
    padding as it does any other."""
    out = dict(batch)
    out["feats"] = pad_to(batch["feats"], 1, frames, 0.0)
    out["input_ids"] = pad_to(batch["input_ids"], 1, chars + 2, piece_pad)
    out["attention_mask"] = pad_to(batch["attention_mask"], 1, chars + 2, 0)
    out["piece_tags"] = pad_to(batch["piece_tags"], 1, chars, 0)
    out["char_ids"] = pad_to(batch["char_ids"], 1, chars, char_pad)
    out["char_tags"] = pad_to(batch["char_tags"], 1, chars, 0)
    out["pool"] = pad_to(pad_to(batch["pool"], 1, chars, 0.0), 2, chars, 0.0)
    return out


def shapes(batch: dict[str, Any]) -> dict[str, list[int]]:
    return {k: list(batch[k].shape) for k in ("feats", "input_ids", "piece_tags", "char_ids", "pool")}


def groups(setting: Setting, lengths: list[float], size: int, bucket_size: int, seed: int,
           train: bool) -> list[list[int]]:
    """Indices of each batch: random chunks of the (already shuffled) items, or snlu's buckets."""
    from snlu.data.batching import BucketBatchSampler

    if not setting.bucketing:
        return [list(range(i, min(i + size, len(lengths)))) for i in range(0, len(lengths), size)]
    sampler = BucketBatchSampler(lengths, size, bucket_size, shuffle=train, seed=seed)
    sampler.set_epoch(1)
    return sampler.batches()


def make_batches(setting: Setting, task: Any, cfg: Any, utts: list[Any], size: int, train: bool) -> list[dict]:
    """The setting's collated batches of ``utts``."""
    proc = task.processor
    items = [proc.prepare(u) for u in utts]
    batches = []
    for group in groups(setting, [proc.length(u) for u in utts], size, cfg.train.bucket_size, cfg.seed, train):
        batch = proc.collate([items[i] for i in group])
        if setting.fixed_padding:
            batch = pad_fixed(batch, cfg.data.max_frames, cfg.data.max_chars, proc.tokenizer.pad_token_id,
                              proc.vocab.stoi["<pad>"])
        batches.append(batch)
    return batches


def summary(seconds: list[float], batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Times (ms per batch: min / median / max), throughput over all batches and padding of the features."""
    utts = sum(len(b["utts"]) for b in batches)
    real = sum(int(b["feat_lengths"].sum()) for b in batches)
    padded = sum(b["feats"].shape[0] * b["feats"].shape[1] for b in batches)
    ms = [1000 * s for s in seconds]
    return {
        "batches": len(batches), "utterances": utts, "total_s": round(sum(seconds), 3),
        "min_ms": round(min(ms), 1), "median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
        "utt_per_s": round(utts / sum(seconds), 3),
        "audio_s_per_s": round(sum(u.duration for b in batches for u in b["utts"]) / sum(seconds), 3),
        "frame_padding_efficiency": round(real / padded, 4),
        "shapes": [shapes(b) for b in batches],
    }


def run_setting(setting: Setting, recipe: str, overrides: list[str], pool: list[int], steps: int,
                n_infer: int) -> dict[str, Any]:
    """Train ``steps`` and predict ``n_infer`` timed batches of one setting."""
    import torch
    from tqdm import tqdm

    from snlu import run
    from snlu.core.devices import to_device
    from snlu.training.trainer import Trainer

    cfg = run.load(recipe, [*overrides, *(DROPOUT_EVERYWHERE if setting.dropout_everywhere else ())])
    built = run.build(cfg)  # seeded, as snlu-train builds it
    task, train = built.task, built.splits["train"]
    bs, ebs = cfg.train.batch_size, cfg.train.eval_batch_size
    order = [train[i] for i in pool]
    train_batches = make_batches(setting, task, cfg, order[: steps * bs], bs, train=True)
    infer_batches = make_batches(setting, task, cfg, order[: n_infer * ebs], ebs, train=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, cfg, Path(tmp))
        trainer.tracker.enabled = False
        device = trainer.device

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        bar = tqdm(total=len(train_batches) + len(infer_batches) + 2, desc=setting.name, leave=False)
        task.train()
        trainer.train_step([train_batches[0]], epoch=1, n=1)  # warm-up: allocator, thread pools, lazy init
        bar.update()
        seconds = []
        for batch in train_batches:
            sync()
            start = time.perf_counter()
            trainer.train_step([batch], epoch=1, n=1)
            sync()
            seconds.append(time.perf_counter() - start)
            bar.update()
        result = {"train": summary(seconds, train_batches)}

        task.eval()
        seconds = []
        grad = torch.no_grad() if setting.no_grad else torch.enable_grad()
        with grad, trainer.autocast():
            for i, batch in enumerate([infer_batches[0], *infer_batches]):  # the first: warm-up
                sync()
                start = time.perf_counter()
                task.predict(to_device(batch, device))
                sync()
                if i:
                    seconds.append(time.perf_counter() - start)
                bar.update()
        bar.close()
        result["infer"] = summary(seconds, infer_batches)
    return {**dataclasses.asdict(setting), "device": str(device), "batch_size": bs, "eval_batch_size": ebs,
            "max_frames": cfg.data.max_frames, "max_chars": cfg.data.max_chars, **result}


def table(results: dict[str, dict[str, Any]]) -> str:
    """One line per setting; ``x ref``: speed-up over reference in total time (in median time per batch)."""
    lines = [f"{'setting':10s} {'train ms/step: min / median / max':>34s} {'utt/s':>7s} {'pad eff':>7s} "
             f"{'x ref':>12s} | {'infer ms/batch: min / median / max':>35s} {'utt/s':>7s} {'x ref':>12s}"]
    for name, r in results.items():
        t, i = r["train"], r["infer"]
        x = {m: f"{r['speedup_vs_reference'][m]:5.2f} ({r['median_speedup_vs_reference'][m]:4.2f})"
             if "speedup_vs_reference" in r else f"{'-':>12s}" for m in ("train", "infer")}
        xt, xi = x["train"], x["infer"]
        lines.append(f"{name:10s} {t['min_ms']:10.0f} / {t['median_ms']:8.0f} / {t['max_ms']:8.0f}  "
                     f"{t['utt_per_s']:7.2f} {t['frame_padding_efficiency']:7.3f} {xt} | "
                     f"{i['min_ms']:11.0f} / {i['median_ms']:8.0f} / "
                     f"{i['max_ms']:8.0f}  {i['utt_per_s']:7.2f} {xi}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides for every setting")
    p.add_argument("--recipe", default=str(RECIPE))
    p.add_argument("--steps", type=int, default=5, help="timed training steps per setting")
    p.add_argument("--batches", type=int, default=3, help="timed inference batches per setting")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--out", default="bench_out/reference_compare.json", help="JSON results")
    a = p.parse_intermixed_args(argv)

    import torch

    from snlu.config import load_recipe
    from snlu.plugins import load_builtins
    from snlu.registry import DATASETS

    load_builtins()
    cfg = load_recipe(a.recipe, a.overrides)
    if cfg.task.name != "spoken_ner":
        p.error(f"{a.recipe}: task.name is '{cfg.task.name}'; the comparison needs a spoken_ner recipe")
    n_train = len(DATASETS.build(cfg.data).load(with_audio=True)["train"])
    pool = list(range(n_train))
    random.Random(cfg.seed).shuffle(pool)
    need = max(a.steps * cfg.train.batch_size, a.batches * cfg.train.eval_batch_size)
    if need > n_train:
        p.error(f"{need} utterances needed, the training split has {n_train}: fewer --steps / --batches")
    results = {}
    for name in a.settings:
        results[name] = run_setting(SETTINGS[name], a.recipe, a.overrides, pool, a.steps, a.batches)
        print(f"{name}: train {results[name]['train']['median_ms']:.0f} ms/step, "
              f"infer {results[name]['infer']['median_ms']:.0f} ms/batch", flush=True)
    if "reference" in results:  # over the same utterances: total time, and (robust to one slow step) median
        ref = results["reference"]
        for r in results.values():
            r["speedup_vs_reference"] = {m: round(ref[m]["total_s"] / r[m]["total_s"], 3) for m in ("train", "infer")}
            r["median_speedup_vs_reference"] = {m: round(ref[m]["median_ms"] / r[m]["median_ms"], 3)
                                                for m in ("train", "infer")}
    print(table(results))
    report = {"recipe": a.recipe, "overrides": a.overrides, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "train_utterances": n_train, "steps": a.steps, "batches": a.batches,
              "settings": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
