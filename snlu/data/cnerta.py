"""CNERTA JSON Lines: reading, checking every line, resolving audio ids; the ``cnerta`` dataset.

One utterance per line::

    {"sentence": "...", "audio": ["BAC009S0706W0384"], "entity": [[0, 6, "...", "ORG"]], "speaker_info": [...]}

Every error names the file, the line and the field. With no paths set the dataset is the built-in
demo corpus (built on first use), so every recipe runs out of the box. With ``feature_cache`` set, the
utterances' features come from a feature cache (snlu/data/features.py) instead of their audio.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import soundfile as sf

from snlu.core.checks import positive
from snlu.core.errors import DataError
from snlu.core.frames import frames_seconds
from snlu.data.audio import truncation
from snlu.data.dataset import Dataset
from snlu.data.demo import DEFAULT_SIZES, ensure_demo_corpus
from snlu.data.labels import dropped_spans, flatten_outermost_counted
from snlu.data.utterance import Utterance
from snlu.registry import DATASETS

log = logging.getLogger("snlu")
SPLITS = ("train", "dev", "test")


class AudioIndex:
    """Resolves an audio id to ``<dir>/<id>.wav``, or ``<dir>/**/<id>.wav`` for AISHELL's nested layout.

    A WAV file holding fewer samples than its header declares (a truncated copy) is an error; with
    ``allow_truncated`` it is read as far as it goes and its line recorded in ``truncated``."""

    def __init__(self, root: str | Path, allow_truncated: bool = False, option: str = "data.allow_truncated"):
        self.root = Path(root).resolve()
        self._nested: dict[str, Path] | None = None
        self.allow_truncated, self.option = allow_truncated, option  # (the setting that allows, for messages)
        self.truncated: list[tuple[str, str]] = []  # ("file:line", what) of each truncated file read as it is

    def resolve(self, audio_id: str, where: tuple[Path, int]) -> Path:
        if not audio_id or Path(audio_id).is_absolute() or ".." in Path(audio_id).parts or "\\" in audio_id:
            raise DataError(where[0], f"audio id '{audio_id}' must be a plain name inside the audio folder",
                            where[1], "audio")
        path = self.root / f"{audio_id}.wav"
        if not path.is_file():
            if self._nested is None:  # walk once, only when some id is not found flat
                self._nested = {p.stem: p for p in self.root.rglob("*.wav")}
            path = self._nested.get(audio_id)
            if path is None:
                raise DataError(where[0], f"audio '{audio_id}.wav' not found under {self.root}", where[1], "audio")
        target = path.resolve()
        if not target.is_relative_to(self.root):  # a symbolic link (of the file or a folder) leading out
            raise DataError(where[0], f"audio '{audio_id}.wav' resolves to {target}, outside the audio folder "
                            f"{self.root}", where[1], "audio")
        return path


def _field(obj: dict, name: str, kind: type | tuple[type, ...], path: Path, line: int) -> Any:
    if name not in obj:
        raise DataError(path, "missing", line, name)
    value = obj[name]
    if not isinstance(value, kind):
        raise DataError(path, f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}", line, name)
    return value


def parse_entities(raw: Any, sentence: str, path: Path, line: int) -> list[tuple[int, int, str]]:
    """Check ``[start, end, text, TYPE]`` items against the sentence."""
    if not isinstance(raw, list):
        raise DataError(path, f"expected a list, got {type(raw).__name__}", line, "entity")
    spans = []
    for k, item in enumerate(raw):
        field = f"entity[{k}]"
        if not (isinstance(item, list) and len(item) == 4):
            raise DataError(path, "expected [start, end, text, TYPE]", line, field)
        start, end, text, etype = item
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
            raise DataError(path, "start and end must be integers", line, field)
        if not (isinstance(etype, str) and etype and isinstance(text, str)):
            raise DataError(path, "text and TYPE must be non-empty strings", line, field)
        if not 0 <= start < end <= len(sentence):
            raise DataError(path, f"span [{start}, {end}) out of range for a {len(sentence)}-character sentence",
                            line, field)
        if sentence[start:end] != text:
            raise DataError(path, f"text '{text}' != sentence[{start}:{end}] '{sentence[start:end]}'", line, field)
        spans.append((start, end, etype))
    return spans


def audio_id_of(obj: dict, path: Path, line: int) -> str:
    audio = _field(obj, "audio", (str, list), path, line)
    if isinstance(audio, list):
        if len(audio) != 1 or not isinstance(audio[0], str):
            raise DataError(path, "expected an id string or a list holding one id string", line, "audio")
        audio = audio[0]
    return audio


def read_lines(path: str | Path) -> list[str]:
    """The lines of a JSONL file; a missing or non-UTF-8 file is a DataError."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # (a BOM, as some editors write, is no line content)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text (byte {e.start}): is this a JSONL file?") from None


def _audio_path(obj: dict, audio_id: str, audio: AudioIndex, path: Path, line: int) -> Path:
    """A manifest's ``path`` (relative to the manifest's folder) if the line has one, else the id resolved."""
    if "path" not in obj:
        return audio.resolve(audio_id, (path, line))
    given = _field(obj, "path", str, path, line)
    resolved = (path.parent / given).resolve()
    if not resolved.is_file():
        raise DataError(path, f"audio '{given}' not found", line, "path")
    return resolved


def check_types(spans: list[tuple[int, int, str]], types: Sequence[str] | None, path: Path, line: int,
                option: str) -> None:
    """Each span's TYPE is one of ``types`` (None: any), else a DataError naming the field and ``option``, the
    setting that adds types."""
    if types is None:
        return
    for k, (*_, etype) in enumerate(spans):
        if etype not in types:
            raise DataError(path, f"type '{etype}' is not one of {', '.join(types)} ({option} adds types)", line,
                            f"entity[{k}]")


def check_line(text: str, path: Path, n: int, audio: AudioIndex | None, require_entities: bool = True,
               types: Sequence[str] | None = None) -> Utterance | None:
    """Check line ``n`` of ``path``: an Utterance, None for a blank line, or a DataError naming the field.
    ``types``: the entity types allowed (None: any)."""
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})", n) from None
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", n)
    sentence = _field(obj, "sentence", str, path, n)
    if not sentence.strip():
        raise DataError(path, "empty sentence", n, "sentence")
    raw = _field(obj, "entity", list, path, n) if require_entities or "entity" in obj else []
    nested = parse_entities(raw, sentence, path, n)
    check_types(nested, types, path, n, "data.entity_types")
    audio_id = audio_id_of(obj, path, n)
    wav, duration = None, 0.0
    if audio is not None:
        resolved = _audio_path(obj, audio_id, audio, path, n)
        try:
            info = sf.info(str(resolved))
        except Exception as e:  # soundfile raises its own types for unreadable files
            raise DataError(path, f"unreadable audio {resolved}: {str(e).splitlines()[0]}", n, "audio") from None
        if info.frames == 0:
            raise DataError(path, f"empty audio {resolved} (0 samples)", n, "audio")
        why = truncation(resolved, info.frames, info.samplerate)
        if why and not audio.allow_truncated:
            raise DataError(path, f"audio {resolved}: {why} ({audio.option} reads it as it is)", n, "audio")
        if why:
            audio.truncated.append((f"{path}:{n}", f"audio {resolved}: {why}"))
        wav, duration = str(resolved), info.frames / info.samplerate
    flat, _ = flatten_outermost_counted(nested)
    return Utterance(audio_id, sentence, wav, duration, flat, nested, obj, f"{path}:{n}")


def read_cnerta(path: str | Path, audio: AudioIndex | None, require_entities: bool = True,
                types: Sequence[str] | None = None, errors: list[DataError] | None = None) -> list[Utterance]:
    """Read and check a CNERTA JSONL file (stops at the first bad line); ``audio=None`` skips audio
    (text-only tasks). A line with a ``path`` (a prepared manifest) uses that file for its audio.
    ``require_entities=False`` (prediction inputs) reads a line without ``entity`` as having none; ``types``:
    the entity types allowed (None: any). With an ``errors`` list, a bad line is appended there and skipped."""
    path = Path(path)
    out = []
    for n, text in enumerate(read_lines(path), start=1):
        try:
            utt = check_line(text, path, n, audio, require_entities, types)
        except DataError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        if utt is not None:
            out.append(utt)
    if not out and not errors:
        raise DataError(path, "no utterances (empty file)")
    return out


def flattening_report(split: str, utts: list[Utterance]) -> str:
    """What flattening to the outermost spans dropped from ``utts``, for the log: the nested spans count; a
    crossing span (overlapping a kept one without lying inside it) is named, with the rule that chose."""
    nested, crossing = 0, []
    for u in utts:
        inside, crosses = dropped_spans(u.nested, u.entities)
        nested += len(inside)
        crossing += [(u, a, b) for a, b in crosses]
    if crossing:
        u, (s1, e1, t1), (s2, e2, t2) = crossing[0]
        log.warning("%s: %d crossing entity span%s dropped (first: %s: [%d, %d) %s crosses [%d, %d) %s, kept); "
                    "data.flatten=outermost keeps the longer span, then the earlier one", split, len(crossing),
                    "s" * (len(crossing) != 1), u.where, s1, e1, t1, s2, e2, t2)
    return f"{nested} nested span{'s' * (nested != 1)} flattened away"


@dataclasses.dataclass
class DemoSizes:
    """Size of the built-in demo corpus (used when ``train`` is not set)."""

    n_train: int = DEFAULT_SIZES["n_train"]
    n_dev: int = DEFAULT_SIZES["n_dev"]
    n_test: int = DEFAULT_SIZES["n_test"]
    seed: int = 0
    dir: str | None = None  # null: $SNLU_CACHE/demo or ~/.cache/snlu/demo

    def __post_init__(self) -> None:
        positive(self, "n_train", "n_dev", "n_test")


@dataclasses.dataclass
class CnertaConfig:
    """Paths of the splits (null: the demo corpus), audio folder, length limits, nesting policy."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    audio_dir: str | None = None
    entity_types: list[str] | None = dataclasses.field(default_factory=lambda: ["PER", "LOC", "ORG"])  # null: any
    allow_truncated: bool = False  # a WAV shorter than its header says: read it as it is (warning) instead of an error
    flatten: str = "outermost"  # nested spans: keep the outermost (the reference policy)
    max_frames: int = 1468  # training utterances longer than this are skipped (and counted)
    max_chars: int = 50  # training sentences longer than this are skipped (and counted)
    limit: int | None = None  # use only the first N utterances of each split (quick runs)
    feature_cache: str | None = None  # folder of cached features (built or rebuilt there when missing or stale)
    feature_workers: int | None = None  # processes that build the cache (null: one per CPU)
    demo: DemoSizes = dataclasses.field(default_factory=DemoSizes)

    def __post_init__(self) -> None:
        positive(self, "max_frames", "max_chars")
        if self.feature_workers is not None:
            positive(self, "feature_workers")
        if self.flatten != "outermost":
            raise ValueError(f"flatten: only 'outermost' is implemented, got '{self.flatten}'")
        given = [s for s in SPLITS if getattr(self, s)]
        if given and len(given) < 3:
            missing = [s for s in SPLITS if s not in given]
            raise ValueError(f"{missing[0]}: missing (set data.train, data.dev and data.test together)")
        for key in (*given, "audio_dir"):
            value = getattr(self, key)
            if value and not Path(value).exists():
                raise ValueError(f"{key}: file not found: {value}")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit: must be > 0, got {self.limit}")
        if self.entity_types is not None and (not self.entity_types or not all(self.entity_types)):
            raise ValueError(f"entity_types: expected a list of type names (null: any), got {self.entity_types}")


@DATASETS.register("cnerta", config=CnertaConfig)
class CnertaData(Dataset):
    """CNERTA JSONL splits with 16 kHz audio; the built-in demo corpus when no paths are given."""

    cfg: CnertaConfig

    def paths(self) -> tuple[dict[str, Path], Path]:
        """Split files and audio folder, building the demo corpus first if that is what is used."""
        if self.cfg.train:
            files = {s: Path(getattr(self.cfg, s)) for s in SPLITS}
            audio_dir = Path(self.cfg.audio_dir) if self.cfg.audio_dir else files["train"].parent
            return files, audio_dir
        d = self.cfg.demo
        root = ensure_demo_corpus(Path(d.dir) if d.dir else None, n_train=d.n_train, n_dev=d.n_dev,
                                  n_test=d.n_test, seed=d.seed)
        return {s: root / f"{s}.jsonl" for s in SPLITS}, root / "wav"

    def load(self, with_audio: bool = True) -> dict[str, list[Utterance]]:
        files, audio_dir = self.paths()
        index = AudioIndex(audio_dir, self.cfg.allow_truncated) if with_audio else None
        types = list(self.cfg.entity_types) if self.cfg.entity_types is not None else None
        splits = {}
        for split, path in files.items():
            utts = read_cnerta(path, index, types=types)
            if self.cfg.limit:
                utts = utts[: self.cfg.limit]
            log.info("%s: %d utterances from %s (%s)", split, len(utts), path, flattening_report(split, utts))
            splits[split] = utts
        if index is not None and index.truncated:
            log.warning("%d truncated audio file%s read as far as they go (data.allow_truncated; first: %s: %s)",
                        len(index.truncated), "s" * (len(index.truncated) != 1), *index.truncated[0])
        splits["train"] = self._filter_long(splits["train"])
        if with_audio and self.cfg.feature_cache:
            from snlu.data.features import FeatureCache  # numpy/torch only when a cache is used

            cache = FeatureCache(self.cfg.feature_cache, self.cfg.feature_workers)
            for split, utts in splits.items():
                cache.add(split, utts)
        return splits

    def _filter_long(self, utts: list[Utterance]) -> list[Utterance]:
        """Skip training utterances over the limits; never truncate, always say how many."""
        max_seconds = frames_seconds(self.cfg.max_frames)
        keep = [u for u in utts if len(u.sentence) <= self.cfg.max_chars and u.duration <= max_seconds]
        if len(keep) < len(utts):
            log.warning("train: skipped %d of %d utterances over max_chars=%d or max_frames=%d",
                        len(utts) - len(keep), len(utts), self.cfg.max_chars, self.cfg.max_frames)
        if not keep:
            raise DataError("train", "no training utterance is within max_chars/max_frames")
        return keep
