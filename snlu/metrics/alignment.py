"""Alignment quality: where a CTC model's forced alignment starts each character, against espeak's timings.

For every utterance with ``timings`` (``[char_start, char_end, start_ms, end_ms]`` entries, written by
``snlu-prepare demo`` and ``demo-asr``), the model's CTC log-probabilities are Viterbi-aligned to the
sentence's characters (snlu/tokenizers/align.py, the path the ``dpmask`` tokenizer uses); a character's
aligned start is the first encoder frame the path gives it. Each timing entry contributes one boundary
error: ``|aligned start (ms) of its first character - start_ms|``.

Frame -> ms convention: an encoder frame ``k`` comes from the Conv2d subsampling (two unpadded 3x3,
stride-2 convolutions, snlu/encoders/subsampling.py), which reads fbank frames ``4k .. 4k + 6``; fbank
frame ``i`` (Kaldi, snip_edges) covers ``[i * shift, i * shift + length)`` ms. Frame ``k`` stands for the
centre of what it reads: ``(4k + 3) * shift + length / 2`` ms, i.e. ``40k + 42.5`` ms with the recipes'
10/25 ms fbank. Even a perfect aligner is off by up to half a frame (20 ms) from this quantisation, and the
first entry (``start_ms`` 0) by at least 42.5 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from snlu.core.errors import DataError, SnluError
from snlu.core.tensors import pad
from snlu.data.utterance import Utterance
from snlu.tokenizers.align import ctc_forced_align

STRIDE, CONTEXT = 4, 3  # encoder frame k reads fbank frames 4k .. 4k + 6: centred on fbank frame 4k + 3


def frame_ms(k: int | Tensor | np.ndarray, shift_ms: float = 10.0, length_ms: float = 25.0) -> Any:
    """Time (ms) that encoder frame ``k`` stands for: the centre of the fbank frames it reads (module doc)."""
    return (STRIDE * k + CONTEXT) * shift_ms + length_ms / 2


def first_frames(token_index: Sequence[int], n_chars: int) -> list[int]:
    """The first frame the path gives each character (-1 for a character it never visits)."""
    out = [-1] * n_chars
    for t, j in enumerate(token_index):
        if 0 <= j < n_chars and out[j] < 0:
            out[j] = t
    return out


def boundary_errors(char_start_ms: Sequence[float], timings: Sequence[Sequence[float]]) -> list[float]:
    """``|char_start_ms[char_start] - start_ms|`` for each ``[char_start, char_end, start_ms, end_ms]`` entry."""
    return [abs(float(char_start_ms[int(entry[0])]) - float(entry[2])) for entry in timings]


def summarize(errors: Sequence[float], n_utterances: int, skipped: int = 0) -> dict[str, Any]:
    """Mean, median and 90th percentile (ms, linear interpolation), and the counts."""
    e = np.asarray(errors, dtype=np.float64)
    stats = {"mean_ms": float(e.mean()), "p50_ms": float(np.percentile(e, 50)), "p90_ms": float(np.percentile(e, 90))}
    return {**{k: round(v, 2) for k, v in stats.items()}, "n_boundaries": len(e), "n_utterances": n_utterances,
            "skipped_utterances": skipped}


def describe(quality: dict[str, Any]) -> str:
    """One line for the console."""
    skipped = quality["skipped_utterances"]
    return (f"alignment: boundary error mean {quality['mean_ms']:.1f} ms, median {quality['p50_ms']:.1f} ms, "
            f"p90 {quality['p90_ms']:.1f} ms ({quality['n_boundaries']} boundaries, {quality['n_utterances']} "
            f"utterances{f', {skipped} too short to align' if skipped else ''})")


def check_timings(utt: Utterance) -> list[list[float]]:
    """The line's ``timings``, checked against its sentence (a DataError naming the line and entry)."""
    timings = utt.record["timings"]
    if not isinstance(timings, list) or not timings:
        raise DataError(utt.where, "expected a non-empty list of [char_start, char_end, start_ms, end_ms]",
                        field="timings")
    for k, entry in enumerate(timings):
        ok = isinstance(entry, list) and len(entry) == 4 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in entry)
        if not ok or not (0 <= entry[0] < entry[1] <= len(utt.sentence) and entry[0] == int(entry[0])):
            raise DataError(utt.where, f"expected [char_start, char_end, start_ms, end_ms] with 0 <= char_start < "
                            f"char_end <= {len(utt.sentence)}, got {entry!r}", field=f"timings[{k}]")
    return timings


def check_model(task: Any, where: str) -> None:
    """A one-line error unless ``task`` has a frontend, a speech encoder and a CTC head over characters."""
    if not all(hasattr(task, name) for name in ("frontend", "audio_encoder", "ctc_head")):
        raise SnluError(f"{where}: the model (task '{task.cfg.task.name}') has no CTC head: alignment needs an asr "
                        "or spoken_ner model")


def char_starts_ms(log_probs: Tensor, frame_lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                   shift_ms: float = 10.0, length_ms: float = 25.0) -> list[list[float] | None]:
    """Per row of a padded batch of CTC log-probabilities ``(B, T, V)`` and character targets ``(B, L)``, the
    aligned start (ms) of each character, or None when no alignment exists (fewer frames than the sentence
    needs). A feasible CTC path visits every character."""
    token_index, feasible = ctc_forced_align(log_probs, frame_lengths, targets, target_lengths)
    out: list[list[float] | None] = []
    for row, n in enumerate(target_lengths.tolist()):
        starts = first_frames(token_index[row].tolist(), n) if bool(feasible[row]) else None
        out.append(None if starts is None else [float(frame_ms(t, shift_ms, length_ms)) for t in starts])
    return out


@torch.no_grad()
def align_starts(task: Any, utts: Sequence[Utterance], batch_size: int, device: torch.device,
                 progress: bool = True) -> list[list[float] | None]:
    """:func:`char_starts_ms` of each utterance's sentence under ``task``'s speech encoder and CTC head."""
    task.to(device).eval()
    cfg = getattr(task.frontend, "cfg", None)
    shift, length = getattr(cfg, "frame_shift_ms", 10.0), getattr(cfg, "frame_length_ms", 25.0)
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration)  # little padding
    out: list[list[float] | None] = [None] * len(utts)
    for first in tqdm(range(0, len(order), batch_size), desc="align", unit="batch", leave=False, disable=not progress):
        rows = order[first : first + batch_size]
        feats = [task.processor.audio.prepare(utts[i]) for i in rows]
        lengths = torch.tensor([len(f) for f in feats], device=device)
        frames, frame_lengths = task.audio_encoder(task.frontend(pad(feats).to(device), lengths), lengths)
        log_probs = task.ctc_head(frames).float().log_softmax(-1)
        chars = [torch.tensor(task.vocab.encode(utts[i].sentence), dtype=torch.long) for i in rows]
        char_lengths = torch.tensor([len(c) for c in chars], device=device)
        starts = char_starts_ms(log_probs, frame_lengths, pad(chars).to(device), char_lengths, shift, length)
        for i, s in zip(rows, starts):
            out[i] = s
    return out


def alignment_quality(task: Any, utts: Sequence[Utterance], batch_size: int, device: torch.device,
                      progress: bool = True) -> dict[str, Any]:
    """Boundary errors (ms) of the lines that have ``timings``: :func:`summarize` of every entry's error."""
    timed = [(u, check_timings(u)) for u in utts if "timings" in u.record]
    if not timed:
        raise SnluError("no line has 'timings' (espeak's [char_start, char_end, start_ms, end_ms]; the lines of "
                        "snlu-prepare demo and demo-asr have them)")
    starts = align_starts(task, [u for u, _ in timed], batch_size, device, progress)
    errors: list[float] = []
    for (_, timings), s in zip(timed, starts):
        if s is not None:
            errors.extend(boundary_errors(s, timings))
    skipped = sum(s is None for s in starts)
    if not errors:
        raise SnluError(f"no alignment: all {len(timed)} timed utterances are too short for their sentences")
    return summarize(errors, len(timed) - skipped, skipped)
