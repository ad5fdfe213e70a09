"""A prepared corpus: manifests, character vocabulary, CMVN statistics, corpus statistics, histograms.

Layout of ``out``::

    train.jsonl dev.jsonl test.jsonl   one usable utterance a line: the CNERTA fields + "path", "duration"
    wav/<id>.wav                       16 kHz mono copies of audio that had another rate or channels
    vocab.json                         CharVocab of the training transcripts
    cmvn.json                          global mean/std of 40-bin fbank over train (the model's cmvn.json format
                                       + "settings"; training reads it with frontend.cmvn=out/cmvn.json)
    features/fbank-<hash>/             with --features: the feature cache (data.feature_cache=out/features)
    stats.json lengths.png             utterances, hours, entities per type; length histograms
    validation.json validation.md      every problem found, with its file and line

The manifests are CNERTA files, so ``snlu-train RECIPE data.train=out/train.jsonl ...`` reads them
directly; each line's ``path`` names its audio (absolute, or with ``relative_paths`` relative to ``out``
for audio inside it, so the folder can move), so no ``data.audio_dir`` is needed.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from snlu.core.errors import ConfigError, DataError
from snlu.data.audio import SAMPLE_RATE, read_wav, write_wav
from snlu.data.features import FeatureCache
from snlu.data.utterance import Utterance
from snlu.data.validate import Report
from snlu.data.vocab import CharVocab
from snlu.registry import AUDIO_FRONTENDS

log = logging.getLogger("snlu")


def manifest_record(utt: Utterance, root: Path | None = None) -> dict:
    """The original line with its audio resolved: CNERTA fields kept, ``path`` and ``duration`` added; ``path``
    relative to ``root`` (the manifest's folder) when given and the audio lies inside it."""
    path, audio = utt.audio, Path(utt.audio).resolve()
    if root is not None and audio.is_relative_to(root.resolve()):
        path = audio.relative_to(root.resolve()).as_posix()
    return {**utt.record, "audio": [utt.id], "path": path, "duration": round(utt.duration, 3)}


def write_manifest(path: Path, utts: list[Utterance], relative: bool = False) -> None:
    """One manifest line per utterance; ``relative``: audio inside ``path``'s folder as a relative path."""
    root = path.parent if relative else None
    path.write_text("".join(json.dumps(manifest_record(u, root), ensure_ascii=False) + "\n" for u in utts),
                    encoding="utf-8")


def convert_audio(utts: list[Utterance], ids: set[str], wav_dir: Path) -> None:
    """Write 16 kHz mono copies of the audio of ``ids`` (read_wav resamples and down-mixes); repoint them."""
    for u in tqdm([u for u in utts if u.id in ids], desc="resample/down-mix", leave=False, disable=not ids):
        audio = read_wav(u.audio)
        target = wav_dir / f"{u.id}.wav"
        write_wav(target, audio, SAMPLE_RATE)
        u.audio, u.duration = str(target.resolve()), len(audio) / SAMPLE_RATE


def recipe_frontend() -> Any:
    """The recipes' frontend, 40-bin fbank (25/10 ms), by its registered name: a prepared corpus's features and
    CMVN are the component's, which this layer names but does not import (every command loads the built-ins)."""
    if "fbank" not in AUDIO_FRONTENDS:
        raise ConfigError("the recipes' frontend 'fbank' is not registered: load the built-in components first "
                          "(snlu.plugins.load_builtins())")
    return AUDIO_FRONTENDS.build("fbank", config={"num_mel_bins": 40})


def write_features(out: Path, splits: dict[str, list[Utterance]], workers: int | None, frontend: Any = None) -> Path:
    """The feature cache of every split with ``frontend`` (default: the recipes'), in ``out``; returns its settings
    folder."""
    cache = FeatureCache(out, workers)
    for split, utts in splits.items():
        cache.add(split, utts)
    return cache.ensure(frontend or recipe_frontend())


def write_cmvn(path: Path, utts: list[Utterance], features: Path | None = None, fbank: Any = None) -> None:
    """Global CMVN over ``utts`` with frontend ``fbank`` (default: the recipes'); from the sums in the feature
    cache's train index when ``features`` (its settings folder) is given, else from the audio."""
    fbank = fbank or recipe_frontend()
    index = json.loads((features / "train.json").read_text(encoding="utf-8")) if features is not None else {}
    if set(index.get("utterances", ())) == {u.audio for u in utts}:  # (a cache built for more: recompute)
        fbank.cmvn_from_sums(index["sum"], index["sumsq"], index["frames"])
    else:
        fbank.fit_cmvn(fbank.featurize(read_wav(u.audio))
                       for u in tqdm(utts, desc="CMVN", leave=False, mininterval=1.0))
    fbank.save_cmvn(path, with_settings=True)


def _summary(values: list[float], digits: int) -> dict[str, float]:
    return {"min": round(min(values), digits), "mean": round(sum(values) / len(values), digits),
            "max": round(max(values), digits)}


def corpus_stats(splits: dict[str, list[Utterance]]) -> dict:
    """Per split: utterances, hours, seconds and characters (min/mean/max), entities per type (as trained:
    outermost spans) and the nested spans flattened away."""
    out = {}
    for split, utts in splits.items():
        types = Counter(t for u in utts for *_, t in u.entities)
        out[split] = {
            "utterances": len(utts),
            "hours": round(sum(u.duration for u in utts) / 3600, 4),
            "seconds": _summary([u.duration for u in utts], 3),
            "chars": _summary([len(u.sentence) for u in utts], 2),
            "entities": dict(sorted(types.items())),
            "nested_dropped": sum(len(u.nested) - len(u.entities) for u in utts),
        }
    return out


def plot_lengths(path: Path, splits: dict[str, list[Utterance]]) -> None:
    """Histograms of durations and transcript lengths, one line per split."""
    fig = Figure(figsize=(10, 4), layout="constrained")  # a bare Figure renders with Agg: no pyplot, no display
    seconds, chars = fig.subplots(1, 2)
    durations = {s: [u.duration for u in utts] for s, utts in splits.items()}
    lengths = {s: [len(u.sentence) for u in utts] for s, utts in splits.items()}
    # The same bins for every split, so the splits compare; one bin per character count.
    second_bins = np.histogram_bin_edges(np.concatenate(list(durations.values())), bins=50)
    char_bins = np.arange(min(map(min, lengths.values())), max(map(max, lengths.values())) + 2) - 0.5
    for split in splits:
        seconds.hist(durations[split], bins=second_bins, histtype="step", label=split)
        chars.hist(lengths[split], bins=char_bins, histtype="step", label=split)
    seconds.set(xlabel="duration (s)", ylabel="utterances")
    chars.set(xlabel="characters", ylabel="utterances")
    seconds.legend()
    fig.savefig(path, dpi=100)


def write_prepared(out: Path, report: Report, strict: bool, features: bool = False,
                   workers: int | None = None, relative_paths: bool = False, frontend: Any = None) -> dict:
    """Write the report, then (unless ``strict`` and there are errors) everything else: CMVN of ``frontend``
    (default: the recipes') and, with ``features``, its feature cache (``workers`` processes); return the stats.
    ``relative_paths``: manifest paths of audio inside ``out`` are relative to it."""
    frontend = frontend or recipe_frontend()
    out.mkdir(parents=True, exist_ok=True)
    report.write(out)
    if strict and report.errors:
        n = len(report.errors)
        raise DataError(out / "validation.md", f"{n} error{'s' * (n != 1)} (--strict: nothing but the report "
                        "was written; without --strict the bad utterances are skipped)")
    for split, r in report.splits.items():
        if not r.utterances:
            raise DataError(r.file, f"{split}: no usable utterance (see {out / 'validation.md'})")
    splits = {s: r.utterances for s, r in report.splits.items()}
    for split, r in report.splits.items():
        convert_audio(r.utterances, r.convert, out / "wav")
        write_manifest(out / f"{split}.jsonl", r.utterances, relative_paths)
    CharVocab.build(u.sentence for u in splits["train"]).save(out / "vocab.json")
    folder = write_features(out / "features", splits, workers, frontend) if features else None
    write_cmvn(out / "cmvn.json", splits["train"], folder, frontend)
    stats = corpus_stats(splits)
    (out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1), encoding="utf-8")
    plot_lengths(out / "lengths.png", splits)
    return stats
