"""Checking a whole corpus before any training: every line, every problem collected, none fatal.

``read_cnerta`` stops at the first bad line (right for training); the validator runs the same
per-line check (:func:`snlu.data.cnerta.check_line`) on every line, collects each DataError as a
:class:`Problem` and adds the corpus-level checks a reader cannot make: entity types, duplicate ids,
sample rate and channels, duration outliers, and transcripts too long for CTC over the encoder's
frames. An utterance with an error is skipped; a warning keeps it (its audio is converted, say).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf
import torch

from snlu.core.errors import DataError
from snlu.core.frames import SAMPLE_RATE, fbank_frames, subsampled_lengths
from snlu.data.cnerta import AudioIndex, check_line
from snlu.data.labels import dropped_spans
from snlu.data.utterance import Utterance

KINDS = {
    "json": "malformed JSON, or not a JSON object",
    "field": "missing field, wrong type, empty sentence, bad audio id",
    "span": "entity span malformed, out of range, or its text != the sentence slice",
    "entity_type": "entity type not among the expected types",
    "duplicate_id": "audio id already used by an earlier line (in any split)",
    "audio_missing": "audio file not found",
    "audio_unreadable": "audio file not readable as audio",
    "audio_empty": "audio file with no samples",
    "audio_truncated": "WAV file holding fewer samples than its header declares (warning with --allow-truncated)",
    "crossing": "entity spans that cross (overlap, neither inside the other): the outermost rule keeps the longer, "
                "then the earlier (warning)",
    "sample_rate": "not 16 kHz (warning: resampled; error with --refuse-resample)",
    "channels": "more than one channel (warning: down-mixed)",
    "duration": "duration outside [min_seconds, max_seconds]",
    "ctc_infeasible": "more characters than the encoder has frames after 4x subsampling",
    "no_transcript": "audio file with no transcript line (AISHELL)",
    "no_audio": "transcript line with no audio file (AISHELL)",
}


@dataclasses.dataclass
class CheckOptions:
    """What the corpus-level checks accept."""

    types: tuple[str, ...] | None = ("PER", "LOC", "ORG")  # None: any type
    resample: bool = True  # False: a rate other than 16 kHz is an error
    min_seconds: float = 0.3
    max_seconds: float = 20.0


@dataclasses.dataclass
class Problem:
    split: str
    kind: str  # a key of KINDS
    severity: str  # "error": the utterance is skipped; "warning": kept
    file: str
    line: int | None
    id: str | None
    message: str  # one line naming the file, the line and the field

    @classmethod
    def of(cls, split: str, kind: str, error: DataError, utt_id: str | None = None,
           severity: str = "error") -> Problem:
        return cls(split, kind, severity, error.path, error.line, utt_id, str(error))


@dataclasses.dataclass
class SplitResult:
    split: str
    file: str
    lines: int  # non-blank lines read
    utterances: list[Utterance]  # the usable ones
    convert: set[str]  # ids of usable utterances whose audio must be resampled or down-mixed

    @property
    def nested_dropped(self) -> int:
        """Spans removed by flattening nested (and crossing) entities to the outermost."""
        return sum(len(u.nested) - len(u.entities) for u in self.utterances)

    @property
    def nested_lines(self) -> int:
        return sum(len(u.nested) > len(u.entities) for u in self.utterances)


def kind_of(error: DataError) -> str:
    """The KINDS key of a DataError raised by :func:`check_line`."""
    field, message = error.field or "", str(error)
    if not field:
        return "json"
    if field.startswith("entity["):
        return "span"
    if field in ("audio", "path"):
        for key, kind in (("not found", "audio_missing"), ("unreadable audio", "audio_unreadable"),
                          ("empty audio", "audio_empty"), (": truncated: ", "audio_truncated")):
            if key in message:
                return kind
    return "field"


def ctc_frames(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Encoder frames for an utterance: fbank frames (default 25/10 ms) after the 4x Conv2d subsampling."""
    frames = fbank_frames(math.ceil(seconds * sample_rate - 1e-6))
    return int(subsampled_lengths(torch.tensor([frames]))[0])


def ctc_need(sentence: str) -> int:
    """Frames CTC needs for ``sentence``: one per character plus a blank between repeated characters."""
    return len(sentence) + sum(a == b for a, b in zip(sentence, sentence[1:]))


class Validator:
    """Checks splits in order (train, dev, test); ids are remembered across splits."""

    def __init__(self, audio: AudioIndex, options: CheckOptions | None = None):
        self.audio = audio
        self.options = options or CheckOptions()
        self.problems: list[Problem] = []
        self.seen: dict[str, str] = {}  # id -> "file:line" of its first use

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def check_split(self, split: str, path: str | Path, lines: Iterable[tuple[int, str]]) -> SplitResult:
        """Check ``(line number, text)`` pairs of ``path``; return the usable utterances."""
        path = Path(path)
        result = SplitResult(split, str(path), 0, [], set())
        for n, text in lines:
            truncated = len(self.audio.truncated)
            try:
                utt = check_line(text, path, n, self.audio)
            except DataError as e:
                result.lines += 1
                self.add(Problem.of(split, kind_of(e), e))
                continue
            if utt is None:
                continue
            result.lines += 1
            problems = self._check_utterance(split, utt, path, n)
            if len(self.audio.truncated) > truncated:  # allowed (--allow-truncated): read as it is, reported
                what = self.audio.truncated[-1][1]
                problems.append(Problem.of(split, "audio_truncated", DataError(path, what, n, "audio"), utt.id,
                                           "warning"))
            self.problems.extend(problems)
            if any(p.severity == "error" for p in problems):
                continue
            if any(p.kind in ("sample_rate", "channels") for p in problems):
                result.convert.add(utt.id)
            self.seen[utt.id] = utt.where
            result.utterances.append(utt)
        return result

    def _check_utterance(self, split: str, utt: Utterance, path: Path, n: int) -> list[Problem]:
        """The checks beyond one line's own content, for a line that passed :func:`check_line`."""
        opt, out = self.options, []

        def problem(kind: str, message: str, field: str | None = None, severity: str = "error") -> None:
            out.append(Problem.of(split, kind, DataError(path, message, n, field), utt.id, severity))

        if opt.types is not None:
            for k, (*_, etype) in enumerate(utt.nested):
                if etype not in opt.types:
                    problem("entity_type", f"type '{etype}' is not one of {', '.join(opt.types)}", f"entity[{k}]")
        for (s1, e1, t1), (s2, e2, t2) in dropped_spans(utt.nested, utt.entities)[1]:
            problem("crossing", f"[{s1}, {e1}) {t1} crosses [{s2}, {e2}) {t2}: dropped (the outermost rule keeps the "
                    "longer span, then the earlier)", "entity", "warning")
        if utt.id in self.seen:
            problem("duplicate_id", f"duplicate id '{utt.id}' (first at {self.seen[utt.id]})", "audio")
        info = sf.info(utt.audio)  # check_line read this header already: it is readable
        if info.samplerate != SAMPLE_RATE:
            if opt.resample:
                problem("sample_rate", f"{utt.audio}: {info.samplerate} Hz, resampled to {SAMPLE_RATE}", "audio",
                        "warning")
            else:
                problem("sample_rate", f"{utt.audio}: {info.samplerate} Hz, expected {SAMPLE_RATE}", "audio")
        if info.channels > 1:
            problem("channels", f"{utt.audio}: {info.channels} channels, down-mixed to mono", "audio", "warning")
        if not opt.min_seconds <= utt.duration <= opt.max_seconds:
            problem("duration", f"{utt.duration:.2f} s is outside [{opt.min_seconds}, {opt.max_seconds}] s", "audio")
        frames, need = ctc_frames(utt.duration), ctc_need(utt.sentence)
        if need > frames:
            problem("ctc_infeasible", f"{len(utt.sentence)} characters need {need} CTC frames but "
                    f"{utt.duration:.2f} s of audio gives {frames} after 4x subsampling", "sentence")
        return out

    def report(self, results: dict[str, SplitResult]) -> Report:
        return Report(results, self.problems, dataclasses.asdict(self.options))


@dataclasses.dataclass
class Report:
    """Everything the validator found; written as ``validation.json`` and ``validation.md``."""

    splits: dict[str, SplitResult]
    problems: list[Problem]
    options: dict

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split: lines, usable, skipped, warnings, nested spans flattened away."""
        out = {}
        for split, r in self.splits.items():
            mine = [p for p in self.problems if p.split == split]
            skipped = len({(p.file, p.line, p.id) for p in mine if p.severity == "error" and p.line is not None})
            out[split] = {"lines": r.lines, "usable": len(r.utterances), "skipped": skipped,
                          "warnings": sum(p.severity == "warning" for p in mine),
                          "nested_lines": r.nested_lines, "nested_dropped": r.nested_dropped}
        return out

    def summary_table(self) -> str:
        """A plain-text table: one row per split, then the count of each kind of problem."""
        counts = self.counts()
        cols = ("lines", "usable", "skipped", "warnings", "nested_lines")
        rows = [("split", *cols)] + [(s, *(str(c[k]) for k in cols)) for s, c in counts.items()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(cols) + 1)]
        text = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
                for r in rows]
        kinds = Counter((p.kind, p.severity) for p in self.problems)
        for (kind, severity), n in sorted(kinds.items()):
            text.append(f"{severity} {kind}: {n} ({KINDS[kind]})")
        return "\n".join(text)

    def to_json(self) -> dict:
        return {"options": self.options, "splits": {s: {"file": r.file, **self.counts()[s]}
                                                    for s, r in self.splits.items()},
                "errors": len(self.errors), "warnings": len(self.problems) - len(self.errors),
                "kinds": KINDS, "problems": [dataclasses.asdict(p) for p in self.problems]}

    def to_markdown(self) -> str:
        counts = self.counts()
        lines = ["# Validation report", "", "| split | file | lines | usable | skipped | warnings | nested lines |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for s, r in self.splits.items():
            c = counts[s]
            lines.append(f"| {s} | `{r.file}` | {c['lines']} | {c['usable']} | {c['skipped']} | {c['warnings']} "
                         f"| {c['nested_lines']} |")
        lines += ["", "Errors skip the utterance (`--strict` refuses the corpus); warnings keep it.", ""]
        for kind, what in KINDS.items():
            mine = [p for p in self.problems if p.kind == kind]
            if mine:
                lines += [f"## {kind} ({len(mine)}): {what}", ""]
                lines += [f"- {p.severity}: `{p.message}`" for p in mine]
                lines.append("")
        if not self.problems:
            lines.append("No problems found.")
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> None:
        (out / "validation.json").write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1),
                                             encoding="utf-8")
        (out / "validation.md").write_text(self.to_markdown(), encoding="utf-8")
