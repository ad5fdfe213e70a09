"""AISHELL-1 as CNERTA-format lines (``entity: []``), for ASR pretraining of the audio encoder.

The release holds ``transcript/aishell_transcript_v0.8.txt`` (``<id> <space-separated words>``) and
``wav/{train,dev,test}/<speaker>/<id>.wav``. Word spaces are removed (CNERTA transcripts have none).
Each line keeps the transcript's file and line number, so the validator's messages point there.
"""

from __future__ import annotations

import json
from pathlib import Path

from snlu.core.errors import DataError
from snlu.data.cnerta import SPLITS, read_lines
from snlu.data.validate import Problem

TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"


def read_transcript(path: Path) -> list[tuple[int, str, str]]:
    """``(line number, id, text without spaces)`` for each non-blank line (text may be empty)."""
    out = []
    for n, line in enumerate(read_lines(path), start=1):
        parts = line.split()
        if parts:
            out.append((n, parts[0], "".join(parts[1:])))
    return out


def find_wavs(root: Path) -> dict[str, dict[str, Path]]:
    """``{split: {id: wav path}}`` from ``root/wav/<split>/<speaker>/<id>.wav``."""
    out = {}
    for split in SPLITS:
        folder = root / "wav" / split
        if not folder.is_dir():
            raise DataError(folder, "folder not found (expected wav/{train,dev,test}/<speaker>/<id>.wav)")
        out[split] = {p.stem: p.resolve() for p in sorted(folder.glob("*/*.wav"))}
    return out


def aishell_lines(root: str | Path) -> tuple[Path, dict[str, list[tuple[int, str]]], list[Problem]]:
    """The transcript path, ``{split: [(transcript line, CNERTA json line)]}`` and the unmatched ones
    (warnings: audio with no transcript, transcript lines with no audio)."""
    root = Path(root)
    transcript = root / TRANSCRIPT
    wavs = find_wavs(root)
    split_of = {utt_id: split for split, ids in wavs.items() for utt_id in ids}
    lines: dict[str, list[tuple[int, str]]] = {s: [] for s in SPLITS}
    problems, transcribed = [], set()
    for n, utt_id, text in read_transcript(transcript):
        split = split_of.get(utt_id)
        if split is None:
            problems.append(Problem.of("transcript", "no_audio", DataError(
                transcript, f"no wav/<split>/<speaker>/{utt_id}.wav for this transcript", n), utt_id, "warning"))
            continue
        transcribed.add(utt_id)
        record = {"sentence": text, "audio": [utt_id], "entity": [], "path": str(wavs[split][utt_id])}
        lines[split].append((n, json.dumps(record, ensure_ascii=False)))
    for split, ids in wavs.items():
        for utt_id, path in ids.items():
            if utt_id not in transcribed:
                problems.append(Problem.of(split, "no_transcript", DataError(
                    path, f"no line for '{utt_id}' in {transcript}"), utt_id, "warning"))
    return transcript, lines, problems
