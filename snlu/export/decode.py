"""Decoding beside the exported graph, in numpy: the CRF's Viterbi (pytorch-crf's recursion, the same float32
operations in the same order), CTC best path and CTC prefix beam search (snlu.heads.ctc's, on numpy rows).

tests/export/test_export_decode.py checks each against the eager implementation. No torch here: this module is part of
the torch-free runtime.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

BLANK = 0  # CTC's blank unit (snlu.heads.ctc.CTCHead.blank)


class Viterbi:
    """A linear-chain CRF's best tag sequences, from its start, end and transition scores (float32)."""

    def __init__(self, start: np.ndarray, end: np.ndarray, transitions: np.ndarray):
        self.start = np.asarray(start, dtype=np.float32)  # (K,)
        self.end = np.asarray(end, dtype=np.float32)  # (K,)
        self.transitions = np.asarray(transitions, dtype=np.float32)  # (K previous, K next)

    def decode(self, emissions: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
        """(B, P, K) emissions, (B,) lengths >= 1 -> each row's tags (``lengths[b]`` of them)."""
        emissions = np.asarray(emissions, dtype=np.float32)
        b, p, _ = emissions.shape
        score = self.start + emissions[:, 0]  # (B, K)
        history = []
        for i in range(1, p):
            scores = score[:, :, None] + self.transitions + emissions[:, i, None, :]  # (B, K previous, K next)
            history.append(scores.argmax(1))  # (B, K): the first best, as torch.max
            active = (i < lengths)[:, None]
            score = np.where(active, scores.max(1), score)
        score = score + self.end
        out = []
        for row in range(b):
            tags = [int(score[row].argmax())]
            for previous in reversed(history[: int(lengths[row]) - 1]):
                tags.append(int(previous[row, tags[-1]]))
            out.append(tags[::-1])
        return out


def ctc_greedy(logits: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """Best path: argmax per frame (the first best), merge repeats, drop blanks."""
    best = np.asarray(logits).argmax(-1)  # (B, T)
    out = []
    for row, n in zip(best, np.asarray(lengths).tolist()):
        row = row[:n]
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        out.append([int(i) for i in row[keep & (row != BLANK)]])
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Over the last axis, in float32."""
    x = np.asarray(x, dtype=np.float32)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def ctc_decode(logits: np.ndarray, lengths: np.ndarray, beam_size: int = 1) -> list[list[int]]:
    """Label ids per utterance: best path (``beam_size`` 1) or prefix beam search (``beam_size`` > 1)."""
    if beam_size <= 1:
        return ctc_greedy(logits, lengths)
    log_probs = log_softmax(logits)
    return [prefix_beam_search(lp[:n], beam_size) for lp, n in zip(log_probs, np.asarray(lengths).tolist())]


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def prefix_beam_search(log_probs: np.ndarray, beam_size: int, blank: int = BLANK) -> list[int]:
    """``snlu.heads.ctc.prefix_beam_search`` on a (T, V) numpy array: the most probable label sequence by CTC
    prefix beam search without a language model (the same recursion, line by line)."""
    neg = -math.inf
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg)}  # prefix -> (ends in blank, ends in label)
    k = min(beam_size, log_probs.shape[1])
    for row in log_probs:
        order = np.argsort(-row, kind="stable")[:k]  # the k most probable units, best first
        top = [int(c) for c in order if c != blank]
        lp = row.tolist()
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [neg, neg])
        for prefix, (b, nb) in beams.items():
            total = _logaddexp(b, nb)
            same = nxt[prefix]
            same[0] = _logaddexp(same[0], total + lp[blank])  # a blank keeps the prefix
            last = prefix[-1] if prefix else None
            if last is not None:
                same[1] = _logaddexp(same[1], nb + lp[last])  # the last label again, merged
            for c in top:
                ext = nxt[prefix + (c,)]
                ext[1] = _logaddexp(ext[1], (b if c == last else total) + lp[c])  # a repeat only after a blank
        best = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)[:beam_size]
        beams = {p: (v[0], v[1]) for p, v in best}
    return list(max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))[0])
