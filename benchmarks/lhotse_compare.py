"""Lhotse against snlu's own data code, measured: manifests, bucketing, the AISHELL recipe, feature storage.

Needs ``pip install lhotse lilcom`` (not a dependency of snlu; keep it out of the project's environment, e.g.
``python3 -m venv /tmp/lhotse_venv`` with a ``.pth`` file naming snlu's site-packages). Not imported by the
package or the tests.

    python benchmarks/lhotse_compare.py --corpus /dev/shm/snlu_synth [--demo DIR] [--out bench_out]

``--corpus``: a synthetic corpus from ``synth_corpus.py`` (built there if missing, ``--n`` train utterances).
``--demo``: the demo corpus folder (default: snlu's cached one). Prints and writes ``OUT/lhotse_compare.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth_corpus import build  # noqa: E402


def timed_held(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s result, wall seconds, and the Python heap (MB) its result still holds."""
    gc.collect()
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    return out, round(seconds, 2), round(held, 2)


# ----------------------------------------------------------------------------- (a) manifests


def snlu_manifest(corpus: Path) -> dict[str, Any]:
    """snlu: read and check train.jsonl (every audio header read), the Utterance list it keeps."""
    from snlu.data.cnerta import AudioIndex, read_cnerta

    utts, seconds, held = timed_held(lambda: read_cnerta(corpus / "train.jsonl", AudioIndex(corpus / "wav")))
    return {"utterances": len(utts), "load_s": seconds, "held_mb": held,
            "bytes_per_utterance": round(held * 2**20 / len(utts))}


def lhotse_cuts(corpus: Path, limit: int | None = None) -> Any:
    """Recordings (headers read), supervisions with the entities as a custom field, cuts (the first ``limit``)."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recs, sups = [], []
    for line in (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()[:limit]:
        obj = json.loads(line)
        rec = Recording.from_file(corpus / "wav" / f"{obj['audio'][0]}.wav")
        recs.append(rec)
        sups.append(SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
                                       text=obj["sentence"], custom={"entity": obj["entity"]}))
    return CutSet.from_manifests(recordings=RecordingSet.from_recordings(recs),
                                 supervisions=SupervisionSet.from_segments(sups))


def lhotse_manifest(corpus: Path, work: Path) -> dict[str, Any]:
    """Lhotse: create the CutSet, write it as JSONL, load it eagerly and lazily (time, Python heap held)."""
    from lhotse import CutSet

    cuts, create_s, create_held = timed_held(lambda: lhotse_cuts(corpus))
    path = work / "cuts.jsonl.gz"
    t = time.perf_counter()
    cuts.to_file(path)
    write_s = round(time.perf_counter() - t, 2)
    n = len(cuts)
    del cuts
    eager, eager_s, eager_held = timed_held(lambda: CutSet.from_file(path).to_eager())
    del eager
    lazy, lazy_open_s, lazy_held = timed_held(lambda: CutSet.from_jsonl_lazy(path))
    t = time.perf_counter()
    total = sum(c.duration for c in lazy)
    lazy_pass_s = round(time.perf_counter() - t, 2)
    return {"utterances": n, "create_s": create_s, "create_held_mb": create_held, "write_s": write_s,
            "file_mb": round(path.stat().st_size / 2**20, 2), "eager_load_s": eager_s, "eager_held_mb": eager_held,
            "eager_bytes_per_utterance": round(eager_held * 2**20 / n), "lazy_open_s": lazy_open_s,
            "lazy_held_mb": lazy_held, "lazy_full_pass_s": lazy_pass_s, "hours": round(total / 3600, 2)}


# ----------------------------------------------------------------------------- (b) padding efficiency


def efficiency(batches: list[list[float]]) -> dict[str, float]:
    """Real frames over padded frames (batch size x longest), and the batch sizes."""
    real = sum(sum(b) for b in batches)
    padded = sum(len(b) * max(b) for b in batches)
    sizes = [len(b) for b in batches]
    return {"efficiency": round(real / padded, 4), "batches": len(batches),
            "mean_batch": round(statistics.mean(sizes), 2), "max_batch": max(sizes)}


def snlu_batches(durations: list[float], batch_size: int, bucket_size: int, epoch: int) -> list[list[float]]:
    from snlu.data.batching import BucketBatchSampler

    sampler = BucketBatchSampler(durations, batch_size, bucket_size, shuffle=True, seed=0)
    sampler.set_epoch(epoch)
    return [[durations[i] for i in b] for b in sampler.batches()]


def lhotse_batches(durations: list[float], max_duration: float, buckets: int, epoch: int) -> list[list[float]]:
    """``DynamicBucketingSampler`` (``buckets`` > 0) or ``SimpleCutSampler`` (0) over cuts of these durations."""
    from lhotse import CutSet, MonoCut
    from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

    cuts = CutSet.from_cuts(MonoCut(id=f"c{i}", start=0.0, duration=d, channel=0) for i, d in enumerate(durations))
    if buckets:
        sampler = DynamicBucketingSampler(cuts, max_duration=max_duration, num_buckets=buckets,
                                          shuffle=True, seed=0, drop_last=False)
    else:
        sampler = SimpleCutSampler(cuts, max_duration=max_duration, shuffle=True, seed=0, drop_last=False)
    sampler.set_epoch(epoch)
    return [[c.duration for c in batch] for batch in sampler]


def calibrate(durations: list[float], batch_size: int, buckets: int) -> float:
    """A lhotse ``max_duration`` whose batches hold ``batch_size`` utterances on average (within 3%)."""
    budget = batch_size * statistics.mean(durations)
    for _ in range(8):
        mean = statistics.mean(len(b) for b in lhotse_batches(durations, budget, buckets, 0))
        if abs(mean / batch_size - 1) < 0.03:
            break
        budget *= batch_size / mean
    return budget


def padding(durations: list[float], batch_size: int, bucket_size: int, epochs: int = 3) -> dict[str, Any]:
    """Each sampler over ``epochs`` epochs, lhotse's ``max_duration`` calibrated to the same mean batch size;
    lhotse's ``num_buckets`` is 30 (its default, 10) or fewer on small corpora (4 batches a bucket at least)."""
    buckets = max(2, min(30, len(durations) // (4 * batch_size)))
    dyn, simple = calibrate(durations, batch_size, buckets), calibrate(durations, batch_size, 0)
    runs = {
        f"snlu BucketBatchSampler(batch_size={batch_size}, bucket_size={bucket_size})":
            lambda e: snlu_batches(durations, batch_size, bucket_size, e),
        f"snlu, no bucketing (bucket_size=1, batch_size={batch_size})":
            lambda e: snlu_batches(durations, batch_size, 1, e),
        f"lhotse DynamicBucketingSampler(max_duration={dyn:.1f}, num_buckets={buckets})":
            lambda e: lhotse_batches(durations, dyn, buckets, e),
        f"lhotse SimpleCutSampler(max_duration={simple:.1f})": lambda e: lhotse_batches(durations, simple, 0, e),
    }
    out = {}
    for name, make in runs.items():
        t = time.perf_counter()
        batches = [b for e in range(epochs) for b in make(e)]
        out[name] = {**efficiency(batches), "seconds_per_epoch": round((time.perf_counter() - t) / epochs, 3)}
    return {"utterances": len(durations), "mean_s": round(statistics.mean(durations), 2),
            "min_s": round(min(durations), 2), "max_s": round(max(durations), 2), "samplers": out}


def durations_of(jsonl: Path, wav_dir: Path) -> list[float]:
    from snlu.data.cnerta import AudioIndex, read_cnerta

    return [u.duration for u in read_cnerta(jsonl, AudioIndex(wav_dir))]


# ----------------------------------------------------------------------------- (c) AISHELL recipe, storage


def aishell_offline(work: Path) -> dict[str, Any]:
    """``lhotse.recipes.prepare_aishell`` on a local fake tree (3 wavs, one without transcript, one transcript
    without audio), with the network unused: does it work offline, and what does it report?"""
    from lhotse.recipes import prepare_aishell

    root = work / "aishell"
    rng = np.random.default_rng(0)
    lines = []
    for split, spk, uid in (("train", "S0002", "BAC009S0002W0122"), ("dev", "S0724", "BAC009S0724W0121"),
                            ("test", "S0764", "BAC009S0764W0121"), ("train", "S0002", "BAC009S0002W0999")):
        wav = root / "data_aishell" / "wav" / split / spk / f"{uid}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000, subtype="PCM_16")
        if not uid.endswith("0999"):
            lines.append(f"{uid} 而 对 楼市 成交 抑制 作用 最 大 的 限 购")
    lines.append("BAC009S0002W0123 没有 音频 的 转写")
    (root / "data_aishell" / "transcript").mkdir(parents=True)
    (root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt").write_text("\n".join(lines) + "\n")
    t = time.perf_counter()
    try:
        manifests = prepare_aishell(root, work / "aishell_manifests")
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return {"works_offline": False, "error": f"{type(e).__name__}: {e}"}
    counts = {part: len(m["supervisions"]) for part, m in manifests.items()}
    text = next(iter(manifests["train"]["supervisions"])).text
    return {"works_offline": True, "seconds": round(time.perf_counter() - t, 2), "supervisions": counts,
            "text_example": text, "reports_audio_without_transcript": "a logging warning per file",
            "reports_transcript_without_audio": False}


def storage(corpus: Path, work: Path, n: int = 300) -> dict[str, Any]:
    """Lhotse 40-bin fbank for ``n`` cuts stored as lilcom chunks, numpy files, and Lhotse Shar (audio as
    flac): bytes per hour of audio and seconds, against float16/float32 arrays of the same features."""
    from lhotse import Fbank, FbankConfig, LilcomChunkyWriter, NumpyFilesWriter

    cuts = lhotse_cuts(corpus, n)
    hours = sum(c.duration for c in cuts) / 3600
    frames = sum(round(c.duration * 100) for c in cuts)
    out: dict[str, Any] = {"cuts": len(cuts), "hours": round(hours, 3),
                           "float32_mb_per_hour": round(frames * 40 * 4 / 2**20 / hours, 1),
                           "float16_mb_per_hour": round(frames * 40 * 2 / 2**20 / hours, 1)}
    extractor = Fbank(FbankConfig(num_mel_bins=40))
    for name, writer in (("lilcom_chunky", LilcomChunkyWriter), ("numpy_files", NumpyFilesWriter)):
        path = work / f"feats_{name}"
        t = time.perf_counter()
        try:
            cuts.compute_and_store_features(extractor, storage_path=path, storage_type=writer, num_jobs=1)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            out[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        size = sum(f.stat().st_size for f in path.parent.glob(f"{path.name}*") if f.is_file())
        size += sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0
        out[name] = {"seconds": round(time.perf_counter() - t, 2), "mb_per_hour": round(size / 2**20 / hours, 1)}
    t = time.perf_counter()
    try:
        (work / "shar").mkdir()
        shar = cuts.to_shar(work / "shar", fields={"recording": "flac"}, shard_size=100)
        size = sum(f.stat().st_size for f in (work / "shar").rglob("*") if f.is_file())
        out["shar_flac_audio"] = {"seconds": round(time.perf_counter() - t, 2), "shards": len(shar["cuts"]),
                                  "mb_per_hour": round(size / 2**20 / hours, 1)}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        out["shar_flac_audio"] = {"error": f"{type(e).__name__}: {e}"}
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="synthetic corpus folder (built there if missing)")
    p.add_argument("--n", type=int, default=10000, help="training utterances of the synthetic corpus")
    p.add_argument("--demo", help="demo corpus folder (default: snlu's cached default demo corpus)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--bucket-size", type=int, default=64)
    p.add_argument("--out", default="bench_out", help="output folder")
    p.add_argument("--json", help="result file (default OUT/lhotse_compare.json)")
    a = p.parse_args()
    import lhotse

    from snlu.data.demo import ensure_demo_corpus

    corpus = build(a.corpus, a.n)
    demo = Path(a.demo) if a.demo else ensure_demo_corpus()
    result: dict[str, Any] = {"lhotse": lhotse.__version__}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        work = Path(tmp)
        result["manifest_snlu"] = snlu_manifest(corpus)
        print("manifest, snlu:", result["manifest_snlu"], flush=True)
        result["manifest_lhotse"] = lhotse_manifest(corpus, work)
        print("manifest, lhotse:", result["manifest_lhotse"], flush=True)
        result["padding"] = {
            "demo": padding(durations_of(demo / "train.jsonl", demo / "wav"), a.batch_size, a.bucket_size),
            "synthetic": padding(durations_of(corpus / "train.jsonl", corpus / "wav"), a.batch_size, a.bucket_size),
        }
        for corpus_name, res in result["padding"].items():
            print(f"padding efficiency, {corpus_name} ({res['utterances']} utterances, "
                  f"{res['min_s']}-{res['max_s']} s):")
            for name, r in res["samplers"].items():
                print(f"  {name}: {100 * r['efficiency']:.1f}% (mean batch {r['mean_batch']}, max {r['max_batch']}, "
                      f"{r['seconds_per_epoch']} s/epoch)")
        result["aishell_recipe"] = aishell_offline(work)
        print("AISHELL recipe:", result["aishell_recipe"], flush=True)
        result["storage"] = storage(corpus, work)
        print("storage:", result["storage"], flush=True)
    path = Path(a.json) if a.json else out / "lhotse_compare.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
