"""The two dynamic programmes of the model as scans, for export: the batched CTC Viterbi forced alignment of
``snlu.tokenizers.align`` (what ``dpmask`` needs inside the graph) and the CRF's Viterbi decoding (pytorch-crf's,
for decoding inside the graph).

``ctc_forced_align`` loops over frames in Python: an export unrolls the loop to the example's length (a graph
that is wrong for every other length) or refuses the dynamic frame axis. Here the forward recursion and the
backtracking are ``torch._higher_order_ops.scan`` loops (an ONNX ``Scan``), with the same recursion, the same
tie rules and the same result (tests/export/test_scans.py compares them with the originals). One inactive step is
appended to each forward scan, so that it never has zero steps (an utterance of one frame, a sentence of one
word piece).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._higher_order_ops.scan import scan

from snlu.core.tensors import lengths_mask

NEG_INF = float("-inf")


def interleave_blank(values: Tensor, fill: float | int | bool) -> Tensor:
    """(B, L) -> (B, 2L + 1): ``fill, v1, fill, v2, ..., vL, fill`` (the CTC extended sequence)."""
    b, n = values.shape
    pad = torch.full_like(values, fill)
    pairs = torch.stack([pad, values], dim=-1).reshape(b, 2 * n)  # (B, 2L)
    return torch.cat([pairs, torch.full_like(values[:, :1], fill)], dim=1)


def _forward_step(carry: tuple[Tensor, Tensor], x: tuple[Tensor, Tensor]) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """One frame of the Viterbi recursion: (alpha, skip penalty) and (emissions, active) -> new alpha, offsets."""
    alpha, skip_penalty = carry  # (B, S), (B, S)
    emit, active = x  # (B, S), (B, 1)
    s = alpha.shape[1]
    shifted = F.pad(alpha, (2, 0), value=NEG_INF)  # shifted[:, s + 2] = alpha[:, s]
    x0, x1, x2 = alpha, shifted[:, 1 : s + 1], shifted[:, :s] + skip_penalty
    best01 = torch.maximum(x0, x1)
    take1 = x1 > x0  # ties prefer staying
    take2 = x2 > best01  # ties prefer the shorter move
    best = torch.maximum(best01, x2)
    new_alpha = torch.where(active, best + emit, alpha)  # frozen past each row's length
    offsets = torch.where(take2, 2, take1.long())  # (int64: onnxruntime has no uint8 Where)
    offsets = torch.where(active, offsets, torch.zeros_like(offsets))  # offset 0 on inactive frames
    return (new_alpha, skip_penalty.clone()), offsets


def _backtrack_step(state: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor]:
    """One frame back: the state at t and the offsets of t -> the state at t - 1, and the state at t."""
    previous = state - offsets.gather(1, state[:, None]).squeeze(1)
    return previous, state.clone()


def scan_forced_align(log_probs: Tensor, input_lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                      blank: int = 0) -> tuple[Tensor, Tensor]:
    """``snlu.tokenizers.align.ctc_forced_align`` (same arguments, same ``(token_index, feasible)``), as scans.

    Needs at least one frame and one target position (the NER tasks always have both)."""
    b, t, _ = log_probs.shape
    n = targets.shape[1]
    input_lengths = input_lengths.long().clamp(max=t)
    target_lengths = target_lengths.long()
    valid = lengths_mask(target_lengths, n)  # (B, L)
    labels = torch.where(valid, targets.long(), blank)  # (B, L)
    repeats = ((labels[:, 1:] == labels[:, :-1]) & valid[:, 1:]).sum(1)  # (B,)
    ext = interleave_blank(labels, blank)  # (B, S)
    s = ext.shape[1]
    dtype = torch.promote_types(log_probs.dtype, torch.float32)
    emit = log_probs.gather(2, ext[:, None, :].expand(b, t, s)).to(dtype).transpose(0, 1)  # (T, B, S)
    differs = torch.cat([torch.zeros_like(valid[:, :1]), labels[:, 1:] != labels[:, :-1]], dim=1)  # (B, L)
    can_skip = interleave_blank(differs, False)  # (B, S): onto a label unlike the one two states back
    skip_penalty = torch.where(can_skip, 0.0, NEG_INF).to(dtype)
    active = lengths_mask(input_lengths, t).t()[..., None]  # (T, B, 1)
    alpha = torch.cat([emit[0, :, :2], torch.full_like(emit[0, :, 2:], NEG_INF)], dim=1)  # (B, S)
    # frames 1 .. T - 1 and one inactive frame (no zero-step scan)
    xs_emit = torch.cat([emit[1:], torch.zeros_like(emit[:1])], dim=0)  # (T, B, S)
    xs_active = torch.cat([active[1:], torch.zeros_like(active[:1])], dim=0)  # (T, B, 1)
    (alpha, _), offsets = scan(_forward_step, (alpha, skip_penalty), (xs_emit, xs_active))  # offsets (T, B, S)
    backptr = torch.cat([torch.zeros_like(offsets[:1]), offsets[:-1]], dim=0)  # (T, B, S): frame t's offsets

    last = 2 * target_lengths  # (B,)
    score_blank = alpha.gather(1, last[:, None]).squeeze(1)
    score_token = torch.where(target_lengths > 0, alpha.gather(1, (last - 1).clamp(min=0)[:, None]).squeeze(1),
                              NEG_INF)
    state = torch.where(score_blank > score_token, last, last - 1).clamp(min=0)  # (B,)
    score = torch.maximum(score_blank, score_token)
    feasible = (input_lengths >= target_lengths + repeats) & ((score > NEG_INF) | (input_lengths == 0))
    _, path = scan(_backtrack_step, state, backptr, reverse=True)  # (T, B): the state of each frame
    path = path.t()  # (B, T)
    keep = (path % 2 == 1) & lengths_mask(input_lengths, t) & feasible[:, None]
    return torch.where(keep, torch.div(path - 1, 2, rounding_mode="floor"), -1), feasible


def _viterbi_step(carry: tuple[Tensor, Tensor], x: tuple[Tensor, Tensor]) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """pytorch-crf's recursion for one position: best score of each tag, and the previous tag it came from."""
    score, transitions = carry  # (B, K), (K, K)
    emit, active = x  # (B, K), (B, 1)
    scores = score[:, :, None] + transitions + emit[:, None, :]  # (B, K previous, K next)
    best, previous = scores.max(dim=1)
    return (torch.where(active, best, score), transitions.clone()), previous


def _viterbi_back(tag: Tensor, x: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """One position back: the tag at t -> the tag at t - 1 (unchanged past the row's length)."""
    previous, active = x  # (B, K), (B,)
    back = previous.gather(1, tag[:, None]).squeeze(1)
    return torch.where(active, back, tag), tag.clone()


def scan_viterbi(emissions: Tensor, lengths: Tensor, start: Tensor, end: Tensor, transitions: Tensor) -> Tensor:
    """pytorch-crf's Viterbi decoding of (B, P, K) emissions with (B,) lengths >= 1 -> (B, P) tags (past a row's
    length: padding to ignore)."""
    b, p, _ = emissions.shape
    em = emissions.float().transpose(0, 1)  # (P, B, K)
    active = lengths_mask(lengths, p).t()  # (P, B)
    score = start + em[0]  # (B, K)
    xs_emit = torch.cat([em[1:], torch.zeros_like(em[:1])], dim=0)  # positions 1 .. P - 1 and one inactive
    xs_active = torch.cat([active[1:], torch.zeros_like(active[:1])], dim=0)[..., None]  # (P, B, 1)
    (score, _), previous = scan(_viterbi_step, (score, transitions), (xs_emit, xs_active))  # (P, B, K)
    last = (score + end).argmax(-1)  # (B,): the best last tag
    backptr = torch.cat([torch.zeros_like(previous[:1]), previous[:-1]], dim=0)  # (P, B, K): position t's
    steps = active & (torch.arange(p, device=emissions.device) > 0)[:, None]  # (P, B): where t -> t - 1 applies
    _, tags = scan(_viterbi_back, last, (backptr, steps), reverse=True)  # (P, B)
    return tags.t()
